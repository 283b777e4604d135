"""Claims: one writer per video of a pseudo-label store, across processes and hosts.

A claim is a small JSON object ``<store>/claims/<video>.json`` naming its owner, host, pid, when
it was taken and when its *lease* expires. Every change to it is conditional
(:mod:`.claim_backends`), so two writers never both hold a video:

- a free video is claimed by a create-if-absent (a hard link on a file system; on S3 a PutObject
  with ``If-None-Match: *``): one request;
- the writer renews its lease while it writes (:class:`ClaimRenewal`), a compare-and-swap on the
  version it wrote (S3: PutObject with ``If-Match: <ETag>``): one request per renewal;
- an expired claim is taken over by the same compare-and-swap on the version read, so of two hosts
  racing for it exactly one succeeds: three requests (the refused create, a read, the swap);
- the owner releases it by a conditional delete: one request.

Expiry is the lease (:data:`LEASE_S`), never a pid that another host cannot see. One shortcut is
kept because it is safe: a claim whose process is gone *on this very node* (same host name, same
kernel boot, same pid namespace) can never be renewed, so it is taken over at once and a killed
run's rerun does not wait out the lease. Hosts compare ``expires`` with their own clocks: their
clocks must agree to well within a lease (NTP does).

Before a process first claims in a store, it checks that the store honours conditional writes by
creating one probe object twice (the second must be refused), and removes expired claims. An S3
endpoint that ignores the condition gets a :class:`StoreError` naming it; other URL schemes are
refused (:func:`.claim_backends.claims_backend`). ``memory://`` stores hold claims in this process,
which is the only one that can see them.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

from usam_video.errors import StoreError
from usam_video.store.claim_backends import ClaimBackend, claims_backend, parse_json

__all__ = [
    "LEASE_S",
    "Claim",
    "ClaimRenewal",
    "claim_path",
    "claim_video",
    "clean_claims",
    "default_owner",
    "host_name",
    "list_claims",
    "release_video",
    "renew_claim",
]

#: How long a claim holds without renewal. The writer renews every third of it, so a video that
#: takes less than 100 s costs no renewal, and a host that died frees its videos after 5 minutes.
LEASE_S = 300.0
#: Claims written before leases existed carry only their time: they expire this long after it.
_LEGACY_STALE_S = 6 * 3600.0

Options = Mapping[str, Any] | None

_PREPARED: dict[tuple[str, str], ClaimBackend] = {}
_PREPARED_LOCK = threading.Lock()
# The version (token) and taking time of each claim this process holds, by (claims place, video,
# owner): renewing and releasing then need no read.
_HELD: dict[tuple[str, str, str], tuple[str, float]] = {}
_HELD_LOCK = threading.Lock()


def host_name() -> str:
    """This host's name in claims: ``$USAM_VIDEO_HOST`` when set (e.g. a pod's name), else the
    host name."""
    return os.environ.get("USAM_VIDEO_HOST") or socket.gethostname()


def default_owner() -> str:
    """``host:pid:thread``: who claims when no owner is named (one writer per thread)."""
    return f"{host_name()}:{os.getpid()}:{threading.get_ident()}"


@cache
def _machine() -> str:
    """This kernel's boot and pid namespace; empty where they cannot be read (not Linux)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def _node() -> str:
    """Where a pid means this process table: host name, kernel boot, pid namespace (empty when
    unknown, which turns the dead-pid shortcut off)."""
    return f"{host_name()}/{_machine()}" if _machine() else ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True  # someone else's process, or not a pid: not known to be gone
    return True


@dataclass(frozen=True)
class Claim:
    """One video's claim as stored: who holds it and until when (times in seconds since the
    epoch)."""

    video_id: str
    owner: str
    host: str
    pid: int
    taken_at: float
    expires_at: float
    node: str = ""

    @classmethod
    def parse(cls, video_id: str, data: bytes) -> Claim:
        """The claim in ``data``; an unreadable one is expired (taken over by compare-and-swap)."""
        held = parse_json(data)
        try:
            taken = float(held.get("time", 0.0))
            expires = float(held.get("expires", taken + _LEGACY_STALE_S))
            pid = int(held.get("pid", -1))
        except (TypeError, ValueError):
            taken, expires, pid = 0.0, 0.0, -1
        owner = str(held.get("owner", "unknown (unreadable claim)"))
        return cls(video_id, owner, str(held.get("host", "")), pid, taken, expires, str(held.get("node", "")))

    @property
    def live(self) -> bool:
        """False once the lease has expired, or when its process is gone on this very node."""
        if time.time() >= self.expires_at:
            return False
        return not (self.node and self.node == _node() and not _pid_alive(self.pid))


def _record(owner: str, lease_s: float, taken_at: float | None = None) -> tuple[bytes, float]:
    """A claim's bytes (owner, host, node, pid, taken, renewed, expires) and its taking time."""
    now = time.time()
    taken = taken_at if taken_at is not None else now
    record = {
        "owner": owner,
        "host": host_name(),
        "node": _node(),
        "pid": os.getpid(),
        "time": taken,
        "renewed": now,
        "expires": now + lease_s,
        "nonce": uuid.uuid4().hex,  # every write's bytes differ: a local claim's version is its digest
    }
    return json.dumps(record).encode(), taken


def _options_key(storage_options: Options) -> str:
    return json.dumps(dict(storage_options or {}), sort_keys=True, default=str)


def _backend(location: str, storage_options: Options) -> ClaimBackend:
    with _PREPARED_LOCK:
        found = _PREPARED.get((location, _options_key(storage_options)))
    return found or claims_backend(location, storage_options)


def _prepared(location: str, storage_options: Options) -> ClaimBackend:
    """The store's claims, checked once per process: conditional writes hold, expired claims
    are removed."""
    key = (location, _options_key(storage_options))
    with _PREPARED_LOCK:
        if key in _PREPARED:
            return _PREPARED[key]
    backend = claims_backend(location, storage_options)
    check_conditional_writes(backend)
    _clean(backend)
    with _PREPARED_LOCK:
        return _PREPARED.setdefault(key, backend)


def check_conditional_writes(backend: ClaimBackend) -> None:
    """Create one probe object twice: the second create must be refused.

    Raises:
        StoreError: the store overwrote the probe (it ignores ``If-None-Match``) or refused the
            request; the message names the endpoint.
    """
    name = f".probe-{uuid.uuid4().hex}"
    try:
        first = backend.create(name, b'{"probe": 1}')
        second = backend.create(name, b'{"probe": 2}')
    except OSError as exc:
        raise StoreError(
            f"{backend.where}: expected a store that takes conditional writes (If-None-Match: *), "
            f"got an error creating probe {name}: {exc}. Claims cannot keep two hosts from writing "
            "the same video there."
        ) from exc
    if first is None or second is not None:
        backend.delete(name, second or first or "")
        raise StoreError(
            f"{backend.where}: expected a store that refuses to create an object twice "
            f"(If-None-Match: *), got one that {'overwrote' if second else 'refused'} probe "
            f"{name}. It ignores conditional writes, so claims there cannot keep two hosts from "
            "writing the same video: use an endpoint that supports them (AWS S3, or a recent "
            "MinIO), or keep the store on a shared file system."
        )
    backend.delete(name, first)


def _hold(backend: ClaimBackend, video_id: str, owner: str, token: str, taken: float) -> None:
    with _HELD_LOCK:
        _HELD[(backend.where, video_id, owner)] = (token, taken)


def _held(backend: ClaimBackend, video_id: str, owner: str, forget: bool = False) -> tuple[str, float] | None:
    with _HELD_LOCK:
        key = (backend.where, video_id, owner)
        return _HELD.pop(key, None) if forget else _HELD.get(key)


def claim_path(location: str, video_id: str) -> Path | None:
    """``<store>/claims/<video>.json`` of a local store; None for a URL."""
    if "://" in location:
        return None
    return Path(location) / "claims" / f"{video_id}.json"


def claim_video(
    location: str,
    video_id: str,
    owner: str | None = None,
    lease_s: float = LEASE_S,
    storage_options: Options = None,
) -> str | None:
    """Claim a video for writing; returns None on success, else the live owner's name.

    Claiming again as the same owner renews the lease. An expired claim (see :class:`Claim`) is
    taken over by compare-and-swap. The first claim of a process in a store checks its
    conditional writes (:func:`check_conditional_writes`) and removes expired claims.

    Raises:
        StoreError: the store cannot hold claims across processes (its endpoint or scheme named).
    """
    owner = owner or default_owner()
    backend = _prepared(location, storage_options)
    for _ in range(3):
        data, taken = _record(owner, lease_s)
        token = backend.create(video_id, data)
        if token is None:
            found = backend.read(video_id)
            if found is None:
                continue  # released between the create and the read: create again
            held = Claim.parse(video_id, found[0])
            if held.owner != owner and held.live:
                return held.owner
            # Ours already (renewed), or expired: swap it for ours only if nobody changed it since.
            data, taken = _record(owner, lease_s, held.taken_at if held.owner == owner else None)
            token = backend.replace(video_id, data, found[1])
        if token is not None:
            _hold(backend, video_id, owner, token, taken)
            return None
    return "unknown (claim contended)"


def renew_claim(
    location: str,
    video_id: str,
    owner: str | None = None,
    lease_s: float = LEASE_S,
    storage_options: Options = None,
) -> str | None:
    """Extend this owner's lease by ``lease_s`` from now; None on success, else who holds the
    video now (its new owner, or "nobody" when the claim is gone)."""
    owner = owner or default_owner()
    backend = _backend(location, storage_options)
    held = _held(backend, video_id, owner)
    if held is not None:  # one conditional write on the version we wrote last
        data, taken = _record(owner, lease_s, held[1])
        token = backend.replace(video_id, data, held[0])
        if token is not None:
            _hold(backend, video_id, owner, token, taken)
            return None
    found = backend.read(video_id)
    if found is None:
        return "nobody (the claim was removed)"
    current = Claim.parse(video_id, found[0])
    if current.owner != owner:
        return current.owner
    data, taken = _record(owner, lease_s, current.taken_at)
    token = backend.replace(video_id, data, found[1])
    if token is None:
        return "unknown (claim contended)"
    _hold(backend, video_id, owner, token, taken)
    return None


def release_video(
    location: str, video_id: str, owner: str | None = None, storage_options: Options = None
) -> None:
    """Release a claim this owner holds (no-op otherwise): a conditional delete."""
    owner = owner or default_owner()
    backend = _backend(location, storage_options)
    held = _held(backend, video_id, owner, forget=True)
    if held is not None and backend.delete(video_id, held[0]):
        return
    found = backend.read(video_id)
    if found is not None and Claim.parse(video_id, found[0]).owner == owner:
        backend.delete(video_id, found[1])


def list_claims(location: str, storage_options: Options = None) -> list[Claim]:
    """Every claim in the store, live or expired, by video id (reads only)."""
    backend = _backend(location, storage_options)
    claims = []
    for name in backend.names():
        found = backend.read(name)
        if found is not None:
            claims.append(Claim.parse(name, found[0]))
    return claims


def _clean(backend: ClaimBackend) -> list[str]:
    removed = []
    for name in backend.names():
        found = backend.read(name)
        # A conditional delete: a claim renewed or taken over since it was read stays.
        if found is not None and not Claim.parse(name, found[0]).live and backend.delete(name, found[1]):
            removed.append(name)
    return removed


def clean_claims(location: str, storage_options: Options = None) -> list[str]:
    """Remove the expired claims of a store (each by a conditional delete); their video ids."""
    return _clean(_backend(location, storage_options))


class ClaimRenewal:
    """Renews a held claim's lease while its owner writes the video (a context manager).

    A thread, not a renewal per write: the label loop's writes happen on the store's writer
    thread at a pace set by SAM 2 (a slow frame or a stalled decoder would let a per-flush lease
    lapse), and a renewal per flushed block would cost a request every 32 frames where this
    costs one per ``lease_s / 3`` (none for a video labelled within that). A renewal that finds
    the claim taken over stops; leaving the block then raises :class:`StoreError`, naming the
    new owner (the writer was stalled past its lease, so another host may have written too).
    """

    def __init__(
        self,
        location: str,
        video_id: str,
        owner: str | None = None,
        lease_s: float = LEASE_S,
        storage_options: Options = None,
    ):
        self.location, self.video_id = location, video_id
        self.owner = owner or default_owner()  # the claiming thread's, not the renewing thread's
        self.lease_s, self.every_s = lease_s, lease_s / 3
        self._options = storage_options
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"usam-lease-{video_id}", daemon=True)
        self.renewals = 0
        self.lost_to: str | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                holder = renew_claim(self.location, self.video_id, self.owner, self.lease_s, self._options)
            except OSError:
                continue  # a network hiccup: the next tick retries, two before the lease ends
            if holder is not None:
                self.lost_to = holder
                return
            self.renewals += 1

    def __enter__(self) -> ClaimRenewal:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self.lost_to is not None and exc_type is None:
            raise StoreError(
                f"{self.location}: video {self.video_id!r}: expected {self.owner} to hold its claim "
                f"while writing, got it taken over by {self.lost_to} (the lease of {self.lease_s:g} s "
                "ran out: was this host stalled?). Another host may have written the video too: "
                "check it with 'usam-video verify' and relabel it if needed."
            )
