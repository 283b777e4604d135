"""Maps a dataset config's ``format`` to its reader class."""

from __future__ import annotations

from usam_video.config import DatasetConfig
from usam_video.datasets.base import DatasetReader
from usam_video.datasets.davis import DavisReader
from usam_video.datasets.mose import MoseReader
from usam_video.datasets.sav import SavReader
from usam_video.datasets.video import PlainVideoReader
from usam_video.errors import ConfigError

__all__ = ["READERS", "open_dataset"]

#: One reader class per ``DatasetConfig.format``.
READERS: dict[str, type[DatasetReader]] = {
    "davis": DavisReader,
    "mose": MoseReader,
    "sav": SavReader,
    "video": PlainVideoReader,
}


def open_dataset(config: DatasetConfig) -> DatasetReader:
    """Open the dataset a config describes with the reader of its format.

    Construction checks only the dataset root (and, per format, its top-level folders or
    prompt file); every per-video problem is raised by that video's own calls, so one bad
    video never stops the others.
    """
    try:
        reader_cls = READERS[config.format]
    except KeyError as exc:  # pydantic's Literal normally stops this earlier
        raise ConfigError(
            f"dataset {config.name!r}: expected a format in {sorted(READERS)}, got {config.format!r}."
        ) from exc
    return reader_cls(config)  # type: ignore[call-arg]
