"""USAM heads: the MLP, loading and saving in the official format."""

from usam_video.heads.io import (
    GAP_HEADS,
    GAP_SHIFT,
    HEAD_NAMES,
    HeadSet,
    load_heads,
    random_heads,
    save_heads,
)
from usam_video.heads.mlp import UsamHead

__all__ = [
    "GAP_HEADS",
    "GAP_SHIFT",
    "HEAD_NAMES",
    "HeadSet",
    "UsamHead",
    "load_heads",
    "random_heads",
    "save_heads",
]
