"""Where claims live: a small object per video whose every change is conditional.

Each backend offers the same five operations on ``<store>/claims/<name>.json``, with a *token*
naming the version read (a digest of the bytes, or an S3 ETag):

- ``create``: write only if absent (the atomic step that makes a claim exclusive);
- ``read``: the bytes and their token, in one step;
- ``replace`` and ``delete``: only if the object still has the token read (compare-and-swap);
- ``names``: the claims present.

:class:`LocalClaims` serves a folder (local disk or a shared file system), :class:`S3Claims` an
``s3://`` URL through s3fs (``If-None-Match: *`` and ``If-Match``), :class:`MemoryClaims` one
process (``memory://`` is one process by definition). :func:`claims_backend` picks one and refuses
any other URL scheme: without conditional writes, claims cannot keep two hosts apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from usam_video.errors import StoreError

__all__ = ["ClaimBackend", "LocalClaims", "MemoryClaims", "S3Claims", "claims_backend", "parse_json"]

# Threads of one process take this before the claims folder's lock file: on NFS, Linux emulates
# flock with POSIX locks, which one process holds for all its threads at once.
_LOCAL_LOCK = threading.Lock()


class ClaimBackend(Protocol):
    """The conditional operations claims are built on (see the module docstring)."""

    where: str  # the claims folder or URL (and the endpoint), for messages

    def create(self, name: str, data: bytes) -> str | None:
        """Write ``data`` if nothing is there; its token, or None when something is."""

    def read(self, name: str) -> tuple[bytes, str] | None:
        """The bytes and token of ``name``; None when absent."""

    def replace(self, name: str, data: bytes, token: str) -> str | None:
        """Overwrite ``name`` if it still has ``token``; the new token, or None when it changed."""

    def delete(self, name: str, token: str) -> bool:
        """Remove ``name`` if it still has ``token``; False when it changed or is gone."""

    def names(self) -> list[str]:
        """The names of the claims present (probe objects, whose names start with ".", left out)."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalClaims:
    """Claims as files of ``<store>/claims``. Creating links a fully written temporary file to
    the claim's name (``link`` fails if the name exists, on local disks and NFS alike), so a
    reader never sees a half-written claim. Replacing and deleting compare the bytes read under
    ``claims/.lock`` (flock), so two takers of one expired claim never both succeed. A shared
    file system must therefore offer locks (NFSv4, NFSv3 with lockd, Lustre mounted with
    ``flock``); where it does not, the lock's OS error says so."""

    def __init__(self, root: Path):
        self.folder = root / "claims"
        self.where = str(self.folder)

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def _temp(self, name: str, data: bytes) -> Path:
        temp = self.folder / f".{name}.{uuid.uuid4().hex}.tmp"  # never "*.json": not a claim
        temp.write_bytes(data)
        return temp

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with _LOCAL_LOCK:
            fd = os.open(self.folder / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def create(self, name: str, data: bytes) -> str | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = self._temp(name, data)
        try:
            os.link(temp, self._path(name))
        except FileExistsError:
            return None
        finally:
            temp.unlink(missing_ok=True)
        return _digest(data)

    def read(self, name: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        return data, _digest(data)

    def replace(self, name: str, data: bytes, token: str) -> str | None:
        with self._locked():
            if (self.read(name) or (b"", ""))[1] != token:
                return None
            os.replace(self._temp(name, data), self._path(name))
        return _digest(data)

    def delete(self, name: str, token: str) -> bool:
        with self._locked():
            if (self.read(name) or (b"", ""))[1] != token:
                return False
            self._path(name).unlink()
        return True

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if not p.name.startswith("."))


_MEMORY: dict[str, dict[str, tuple[bytes, str]]] = {}
_MEMORY_LOCK = threading.Lock()
_MEMORY_VERSIONS = itertools.count()


class MemoryClaims:
    """Claims of a ``memory://`` store, held by this process (the memory filesystem is this
    process's own, so no other process can write the store anyway)."""

    def __init__(self, location: str):
        self.where = f"{location}/claims (this process)"
        self._location = location

    def _claims(self) -> dict[str, tuple[bytes, str]]:
        return _MEMORY.setdefault(self._location, {})

    def create(self, name: str, data: bytes) -> str | None:
        with _MEMORY_LOCK:
            if name in self._claims():
                return None
            token = str(next(_MEMORY_VERSIONS))
            self._claims()[name] = (data, token)
            return token

    def read(self, name: str) -> tuple[bytes, str] | None:
        with _MEMORY_LOCK:
            return self._claims().get(name)

    def replace(self, name: str, data: bytes, token: str) -> str | None:
        with _MEMORY_LOCK:
            if self._claims().get(name, (b"", ""))[1] != token:
                return None
            new = str(next(_MEMORY_VERSIONS))
            self._claims()[name] = (data, new)
            return new

    def delete(self, name: str, token: str) -> bool:
        with _MEMORY_LOCK:
            if self._claims().get(name, (b"", ""))[1] != token:
                return False
            del self._claims()[name]
            return True

    def names(self) -> list[str]:
        with _MEMORY_LOCK:
            return sorted(n for n in self._claims() if not n.startswith("."))


def _lost_condition(exc: OSError) -> bool:
    """True when S3 refused a conditional write or delete because the object is not the one
    named: 412 Precondition Failed, 409 ConditionalRequestConflict (a concurrent conditional
    write on AWS) or 404 (an If-Match on an object deleted since). s3fs turns the first into
    FileExistsError or EINVAL and keeps botocore's error as the cause."""
    if isinstance(exc, FileExistsError | FileNotFoundError):
        return True
    response = getattr(exc.__cause__, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"} or status in {
        409,
        412,
        404,
    }


class S3Claims:
    """Claims as objects of an S3 bucket (AWS, MinIO, moto...), through s3fs: a create is a
    PutObject with ``If-None-Match: *``, a replace a PutObject with ``If-Match: <ETag>``, a
    delete a DeleteObject with ``If-Match``. One request each; a read is one GetObject."""

    def __init__(self, fs: Any, root: str):
        from fsspec.asyn import sync

        self._fs = fs
        self._sync = sync
        self._bucket, prefix, _ = fs.split_path(root)
        self._prefix = f"{prefix}/claims" if prefix else "claims"
        self.where = f"s3://{self._bucket}/{self._prefix} at {self.endpoint}"

    @property
    def endpoint(self) -> str:
        """The URL requests go to (AWS's own endpoint when none is configured)."""
        try:
            return str(self._fs.s3.meta.endpoint_url)
        except Exception:  # no client yet (e.g. no credentials): name what was configured
            return str(self._fs.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3")

    def _key(self, name: str) -> str:
        return f"{self._prefix}/{name}.json"

    def _put(self, name: str, data: bytes, **condition: str) -> str | None:
        try:
            out = self._fs.call_s3(
                "put_object", Bucket=self._bucket, Key=self._key(name), Body=data, **condition
            )
        except OSError as exc:
            if _lost_condition(exc):
                return None
            raise
        return str(out["ETag"])

    def create(self, name: str, data: bytes) -> str | None:
        return self._put(name, data, IfNoneMatch="*")

    def read(self, name: str) -> tuple[bytes, str] | None:
        async def get() -> tuple[bytes, str]:
            out = await self._fs._call_s3("get_object", Bucket=self._bucket, Key=self._key(name))
            async with out["Body"] as body:
                return await body.read(), str(out["ETag"])

        try:
            return self._sync(self._fs.loop, get)
        except FileNotFoundError:
            return None

    def replace(self, name: str, data: bytes, token: str) -> str | None:
        return self._put(name, data, IfMatch=token)

    def delete(self, name: str, token: str) -> bool:
        try:
            self._fs.call_s3("delete_object", Bucket=self._bucket, Key=self._key(name), IfMatch=token)
        except OSError as exc:
            if _lost_condition(exc):
                return False
            raise
        return True

    def names(self) -> list[str]:
        # ListObjectsV2 directly: one request per 1,000 claims (s3fs's ls lists the parent
        # again when the folder is empty, and caches listings).
        keys: list[str] = []
        page: dict[str, Any] = {"Bucket": self._bucket, "Prefix": f"{self._prefix}/"}
        while True:
            out = self._fs.call_s3("list_objects_v2", **page)
            keys.extend(str(item["Key"]).rsplit("/", 1)[-1] for item in out.get("Contents", []))
            if not out.get("IsTruncated"):
                break
            page["ContinuationToken"] = out["NextContinuationToken"]
        return sorted(k.removesuffix(".json") for k in keys if k.endswith(".json") and not k.startswith("."))


def _is_s3(fs: Any) -> bool:
    try:
        from s3fs import S3FileSystem
    except ImportError:  # an s3:// URL has already failed to open without s3fs
        return False
    return isinstance(fs, S3FileSystem)


def claims_backend(location: str, storage_options: Mapping[str, Any] | None = None) -> ClaimBackend:
    """The claims of the store at ``location`` (a path, an ``s3://`` or ``memory://`` URL).

    Raises:
        StoreError: any other URL scheme (no conditional writes known to hold there).
    """
    location = location.removeprefix("file://")
    if "://" not in location:
        return LocalClaims(Path(location))
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(location, **dict(storage_options or {}))
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if "memory" in protocols:
        return MemoryClaims(location)
    if _is_s3(fs):
        return S3Claims(fs, root)
    raise StoreError(
        f"{location}: expected a store whose claims hold across processes (a local or shared "
        f"folder, or s3:// with conditional writes), got a {type(fs).__name__} store: claims "
        "there cannot keep two hosts from writing the same video. Keep the store on a shared "
        "file system or on S3."
    )


def parse_json(data: bytes) -> dict[str, Any]:
    """A claim's JSON object; an empty dict for bytes that are not one (an unreadable claim)."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
