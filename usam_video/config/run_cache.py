"""The per-process cache of run configs behind :func:`load_run_config`.

A run is loaded by the CLI, its flow and every task, often in one process; parsing and validating
it once is enough while none of its inputs changed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from usam_video.config.loading import load_run_config_uncached
from usam_video.config.reading import recording_inputs
from usam_video.config.run import RunConfig

__all__ = ["load_run_config"]

# (path as given, working directory) -> (what the load read: ("file:<path>", sha256) and
# ("env:<name>", value) pairs, the config). A relative path means another file in another folder.
_RUN_CACHE: dict[tuple[str, str], tuple[tuple[tuple[str, str | None], ...], RunConfig]] = {}
_RUN_CACHE_LOCK = threading.Lock()


def _unchanged(inputs: tuple[tuple[str, str | None], ...]) -> bool:
    for kind_name, value in inputs:
        kind, _, name = kind_name.partition(":")
        if kind == "env":
            if os.environ.get(name) != value:
                return False
        else:
            try:
                current = hashlib.sha256(Path(name).read_text().encode()).hexdigest()
            except OSError:
                return False
            if current != value:
                return False
    return True


def load_run_config(path: Path) -> RunConfig:
    """Load a run YAML. Its ``dataset``, ``model``, ``heads`` and ``policy`` entries are either
    inline mappings or paths (relative to the run file) of YAML files of that kind.

    A run is loaded by the CLI, its flow and every task, often in one process: the parsed and
    validated config is kept per process and returned again (a copy) while every file it was
    read from has the same content and every environment variable it used (and ``HOME``, for
    ``~``) the same value; anything changed, it is loaded afresh. Errors are never kept.
    """
    key = (str(path), os.getcwd())
    with _RUN_CACHE_LOCK:
        cached = _RUN_CACHE.get(key)
    if cached is not None and _unchanged(cached[0]):
        return cached[1].model_copy(deep=True)
    with recording_inputs() as (files, env):
        config = load_run_config_uncached(Path(path))
        inputs = tuple((f"file:{p}", d) for p, d in files) + tuple(
            (f"env:{n}", v) for n, v in [*env, ("HOME", os.environ.get("HOME"))]
        )
    with _RUN_CACHE_LOCK:
        _RUN_CACHE[key] = (inputs, config)
    return config.model_copy(deep=True)
