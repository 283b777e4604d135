"""The Zarr pseudo-label store and the heads-training container (the only package importing zarr)."""

from usam_video.store.claims import LEASE_S, Claim, ClaimRenewal
from usam_video.store.heads_container import TRAINING_FORMAT, TrainingContainer
from usam_video.store.verify import ArrayCheck, VerifyReport, verify_store
from usam_video.store.zarr_store import (
    STORE_FORMAT,
    FrameTable,
    PseudoLabelStore,
    VideoSummary,
    VideoWriter,
    WriteBatch,
    WriteCounts,
)

__all__ = [
    "LEASE_S",
    "STORE_FORMAT",
    "TRAINING_FORMAT",
    "ArrayCheck",
    "Claim",
    "ClaimRenewal",
    "VerifyReport",
    "FrameTable",
    "PseudoLabelStore",
    "TrainingContainer",
    "VideoSummary",
    "VideoWriter",
    "WriteBatch",
    "WriteCounts",
    "verify_store",
]
