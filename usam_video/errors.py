"""The one error hierarchy of usam-video.

Every error subclasses :class:`UsamVideoError` and the builtin it refines, so callers that
catch ``ValueError`` or ``FileNotFoundError`` keep working. Messages follow the form
"<where>: expected X, got Y. <remedy>" so a user can act on them without reading code.
"""

from __future__ import annotations

__all__ = [
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


class VideoNotFoundError(StoreError, KeyError):
    """A video id is not in the store."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class EvaluationError(InputError):
    """Predictions and ground truth cannot be compared (sizes, frames, objects differ)."""
