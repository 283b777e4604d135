"""Dataset readers (one class per format behind :class:`DatasetReader`) and frame sources."""

from usam_video.datasets.base import DatasetReader, FrameSource, JpegFolderSource
from usam_video.datasets.davis import DavisReader
from usam_video.datasets.registry import READERS, open_dataset

__all__ = ["DatasetReader", "FrameSource", "JpegFolderSource", "DavisReader", "READERS", "open_dataset"]
