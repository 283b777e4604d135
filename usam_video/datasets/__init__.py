"""Dataset readers (one class per format behind :class:`DatasetReader`) and frame sources."""

from usam_video.datasets.base import DatasetReader, FrameSource, JpegFolderSource
from usam_video.datasets.davis import DavisReader
from usam_video.datasets.mose import MoseReader
from usam_video.datasets.registry import READERS, open_dataset
from usam_video.datasets.sav import SavReader
from usam_video.datasets.sources import Mp4Source
from usam_video.datasets.video import PlainVideoReader

__all__ = [
    "DatasetReader",
    "FrameSource",
    "JpegFolderSource",
    "Mp4Source",
    "DavisReader",
    "MoseReader",
    "SavReader",
    "PlainVideoReader",
    "READERS",
    "open_dataset",
]
