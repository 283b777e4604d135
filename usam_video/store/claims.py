"""Claims: one writer per video of a pseudo-label store.

A local store claims a video with an exclusive-create file ``<store>/claims/<video>.json``
(atomic on POSIX file systems, so two workers never both write a video). A claim whose process
is gone (same host, dead pid) or older than ``stale_after_s`` is taken over: a killed run does
not block its rerun. Object-store URLs (``s3://``, ``memory://``) keep claims per process only.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["claim_path", "claim_video", "default_owner", "release_video"]

_MEMORY_CLAIMS: dict[str, dict[str, str]] = {}
_MEMORY_CLAIMS_LOCK = threading.Lock()


def default_owner() -> str:
    """``host:pid:thread``: who claims when no owner is named (one writer per thread)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _claim_is_stale(held: dict[str, Any], stale_after_s: float) -> bool:
    """True when a claim may be taken over: unreadable, older than ``stale_after_s``, or held by
    a process of this host that is gone."""
    if not held:
        return True
    if time.time() - float(held.get("time", 0)) > stale_after_s:
        return True
    if held.get("host") == socket.gethostname():
        try:
            os.kill(int(held.get("pid", -1)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OverflowError):
            return False
    return False


def claim_path(location: str, video_id: str) -> Path | None:
    """``<store>/claims/<video>.json`` of a local store; None for an object-store URL."""
    if "://" in location:
        return None
    return Path(location) / "claims" / f"{video_id}.json"


def claim_video(
    location: str, video_id: str, owner: str | None = None, stale_after_s: float = 6 * 3600
) -> str | None:
    """Claim a video for writing; returns None on success, else the live owner's name.

    Local stores use an exclusive-create file ``claims/<video>.json`` (atomic on POSIX file
    systems, so two workers never both write a video). A claim whose process is gone (same
    host, dead pid) or older than ``stale_after_s`` is taken over: a killed run does not
    block its rerun. Other backends keep claims per process only.
    """
    owner = owner or default_owner()
    path = claim_path(location, video_id)
    if path is None:
        with _MEMORY_CLAIMS_LOCK:
            holder = _MEMORY_CLAIMS.setdefault(location, {}).get(video_id)
            if holder is not None and holder != owner:
                return holder
            _MEMORY_CLAIMS[location][video_id] = owner
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(
        {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    )
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text())
            except (OSError, ValueError):
                held = {}
            if held.get("owner") == owner:
                return None
            if not _claim_is_stale(held, stale_after_s):
                return str(held.get("owner", "unknown"))
            path.unlink(missing_ok=True)  # stale: take it over
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(payload)
        return None
    return "unknown (claim contended)"


def release_video(location: str, video_id: str, owner: str | None = None) -> None:
    """Release a claim this owner holds (no-op otherwise)."""
    owner = owner or default_owner()
    path = claim_path(location, video_id)
    if path is None:
        with _MEMORY_CLAIMS_LOCK:
            if _MEMORY_CLAIMS.get(location, {}).get(video_id) == owner:
                del _MEMORY_CLAIMS[location][video_id]
        return
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if held.get("owner") == owner:
        path.unlink(missing_ok=True)
