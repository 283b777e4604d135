"""Maps a dataset config's ``format`` to its reader class."""

from __future__ import annotations

from usam_video.config import DatasetConfig
from usam_video.datasets.base import DatasetReader
from usam_video.datasets.davis import DavisReader
from usam_video.errors import ConfigError

__all__ = ["READERS", "open_dataset"]

READERS: dict[str, type[DatasetReader]] = {"davis": DavisReader}


def open_dataset(config: DatasetConfig) -> DatasetReader:
    """Open the dataset a config describes with the reader of its format."""
    try:
        reader_cls = READERS[config.format]
    except KeyError as exc:  # pydantic's Literal normally stops this earlier
        raise ConfigError(
            f"dataset {config.name!r}: expected a format in {sorted(READERS)}, got {config.format!r}."
        ) from exc
    return reader_cls(config)  # type: ignore[call-arg]
