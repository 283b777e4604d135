"""Prefect flows of usam-video: thin wrappers that fan out per video over ``usam_video.pipeline``.

This is the only package that imports prefect. Importing it does two different things at two
different times:

* **At import: configuration only.** Python runs this ``__init__`` before any ``flows.<module>``,
  so the offline defaults below are in ``os.environ`` before prefect is first imported, which
  is when prefect reads its settings (no analytics, no tracking, a start-up timeout long enough
  for a cold ephemeral server on a 2-core machine, warnings only). They are defaults: a user's
  own settings win. Setting them is kept at import because nothing later would be early
  enough, and it starts, binds or imports nothing.
* **Before the first flow run: the embedded server.** :func:`bind_embedded_server` makes the
  throwaway server Prefect starts without ``PREFECT_API_URL`` die with this process
  (:mod:`flows.embedded`). That registers a server object and imports prefect's server
  application, so it is not done at import: whatever runs flows calls it before its first flow
  run (the CLI, in each command that runs a flow). Importing a flow module (for ``.fn``, a
  deployment, ``usam-video deploy``) binds nothing.
"""

import os

__all__ = ["bind_embedded_server"]

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def bind_embedded_server() -> None:
    """Bind the embedded Prefect server this process would start to this process, so that it
    dies with it, even after ``kill -9`` (see :mod:`flows.embedded`).

    Call it before the first flow run of a process: Prefect starts the embedded server lazily
    from whichever thread first needs a client, and a server already running cannot be bound.
    Does nothing (and imports no server code) when an API URL is configured; calling it again
    does nothing.
    """
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return  # a real server: nothing to bind, and its heavy module is not imported
    from flows.embedded import bind_embedded_server_to_this_process

    bind_embedded_server_to_this_process()
