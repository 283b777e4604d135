"""A Prefect database migrated once per test session, copied into every server the tests start.

A Prefect server on a new SQLite file runs every Alembic migration first: about 5 s of CPU, paid
by each server a test session starts (one harness per xdist worker, the service package's
server, the embedded servers of CLI runs). A copy of a file migrated once starts in half the
time (it still checks the schema's version on start). The template lives in the session's
temporary folder, so it always matches the installed Prefect.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import filelock

DB_NAME = "prefect.db"  # the file a server keeps under PREFECT_HOME

_MIGRATE = """
import asyncio
from prefect.server.database import provide_database_interface
asyncio.run(provide_database_interface().create_db())
"""


def migrated_template(shared: Path) -> Path:
    """The migrated database under ``shared`` (a folder every xdist worker of the session sees),
    made by the first worker to ask, in a subprocess so that this process's Prefect settings are
    left alone."""
    template = shared / "prefect-template.db"
    with filelock.FileLock(str(template) + ".lock"):
        if not template.is_file():
            partial = template.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            env = {
                **os.environ,
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{partial}",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1",
            }
            env.pop("PREFECT_API_URL", None)
            subprocess.run([sys.executable, "-c", _MIGRATE], env=env, check=True, timeout=300)
            partial.replace(template)
    return template


def seed(template: Path, target: Path) -> Path:
    """A copy of ``template`` at ``target`` (a server's database file), folders made."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return target
