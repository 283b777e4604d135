"""The Zarr pseudo-label store (the only package that imports zarr)."""

from usam_video.store.zarr_store import STORE_FORMAT, FrameTable, PseudoLabelStore, VideoSummary, VideoWriter

__all__ = ["STORE_FORMAT", "FrameTable", "PseudoLabelStore", "VideoSummary", "VideoWriter"]
