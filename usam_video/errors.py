"""The one error hierarchy of usam-video.

Every error subclasses :class:`UsamVideoError` and the builtin it refines, so callers that
catch ``ValueError`` or ``FileNotFoundError`` keep working. Messages follow the form
"<where>: expected X, got Y. <remedy>" so a user can act on them without reading code.
"""

from __future__ import annotations

import errno
import re

__all__ = [
    "NOT_RETRIED",
    "UsamVideoError",
    "ConfigError",
    "DatasetError",
    "DatasetNotFoundError",
    "FrameReadError",
    "AnnotationError",
    "RleError",
    "ModelBuildError",
    "CheckpointError",
    "HeadsError",
    "StoreError",
    "StoreNotFoundError",
    "VideoNotFoundError",
    "EvaluationError",
    "InputError",
    "WriteError",
    "StoreWriteError",
    "DamagedVideoError",
    "os_reason",
    "store_write_error",
]


class UsamVideoError(Exception):
    """Base class of every error raised by usam-video."""


class InputError(UsamVideoError, ValueError):
    """Bad input supplied by the user (a file, an argument); retrying will not help."""


class ConfigError(InputError):
    """A YAML config file is missing, malformed or fails validation."""


class DatasetError(InputError):
    """A dataset on disk does not have the layout or content its reader expects."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset root, sequence folder or list file does not exist."""


class FrameReadError(DatasetError):
    """A video frame is missing, unreadable or of the wrong size."""


class AnnotationError(DatasetError):
    """An annotation (palette PNG, RLE, prompt file) is missing or malformed."""


class RleError(AnnotationError):
    """A run-length encoded mask (COCO or CVAT RLE) that does not decode to a mask of its size."""


class ModelBuildError(InputError):
    """A SAM 2 model config cannot be resolved or instantiated."""


class CheckpointError(ModelBuildError):
    """A checkpoint file is missing or its state dict does not match the model."""


class HeadsError(InputError):
    """A USAM heads directory is missing heads or holds wrongly shaped weights."""


class StoreError(UsamVideoError, RuntimeError):
    """The Zarr pseudo-label store is unreadable or inconsistent."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No store exists at the given location."""


class DamagedVideoError(StoreError):
    """A stored video fails its checksums: it is neither skipped as complete nor written into."""


class VideoNotFoundError(StoreError, KeyError):
    """A video id is not in the store."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class EvaluationError(InputError):
    """Predictions and ground truth cannot be compared (sizes, frames, objects differ)."""


class WriteError(UsamVideoError, OSError):
    """The operating system refused a write (read-only, no space, not a directory, no
    permission): retrying will not help until the cause is fixed. ``errno`` is the OS error's."""


class StoreWriteError(StoreError, WriteError):
    """A write to the pseudo-label store failed in the operating system (see :class:`WriteError`)."""


#: Errors that fail the same way until someone acts (bad input, a write the OS refused, a
#: damaged video): a video task or a shard never retries them.
NOT_RETRIED: tuple[type[UsamVideoError], ...] = (InputError, WriteError, DamagedVideoError)


# What to do about the OS errors a careless setup meets; others get the generic remedy.
_REMEDIES = {
    errno.ENOSPC: "free disk space or use another disk, then rerun",
    errno.EDQUOT: "free space within your disk quota, then rerun",
    errno.EFBIG: "a file size limit was reached (ulimit -f or the file system's): raise it, then rerun",
    errno.EROFS: "the file system is read-only: make it writable or copy the folder somewhere writable",
    errno.EACCES: "no permission to write there: fix the permissions or choose a folder you own",
    errno.EPERM: "no permission to write there: fix the permissions or choose a folder you own",
    errno.ENOTDIR: "a file stands where a folder must be: move the file away or choose another path",
    errno.EISDIR: "a folder stands where a file must be: move the folder away or choose another path",
}


_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def os_reason(exc: OSError) -> str:
    """One line for an OS error: its text, its errno name and the file, plus what to do, e.g.
    ``Read-only file system (EROFS) at /data/s.zarr/zarr.json; the file system is read-only: ...``.
    """
    name = errno.errorcode.get(exc.errno, "") if exc.errno is not None else ""
    text = exc.strerror or str(exc) or type(exc).__name__
    # zarr and the store write "<file>.<32 hex>.partial" then rename it: name the file meant.
    where = f" at {_PARTIAL.sub('', str(exc.filename))}" if exc.filename else ""
    remedy = _REMEDIES.get(exc.errno or -1, "fix the cause, then rerun")
    return f"{text}{f' ({name})' if name else ''}{where}; {remedy}"


def store_write_error(where: str, exc: OSError) -> StoreWriteError:
    """The :class:`StoreWriteError` of an OS error met while writing ``where`` (a store, a video
    of it), keeping the OS error's ``errno`` (so a flow can tell a full disk from a hiccup)."""
    error = StoreWriteError(f"{where}: expected a writable store, got {os_reason(exc)}.")
    error.errno = exc.errno  # only errno: OSError's str() would show a filename set here
    return error
