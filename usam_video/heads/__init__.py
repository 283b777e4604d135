"""USAM heads: the MLP, loading and saving in the official format with a manifest."""

from usam_video.heads.io import (
    DEFAULT_TOKEN_DIM,
    GAP_HEADS,
    GAP_SHIFT,
    HEAD_NAMES,
    HeadSet,
    heads_from_config,
    load_heads,
    manifest_in_force,
    random_heads,
    save_heads,
)
from usam_video.heads.manifest import (
    MANIFEST_FILE,
    PAIRINGS,
    HeadInputs,
    HeadsManifest,
    Pairing,
    read_manifest,
    token_index,
    write_manifest,
)
from usam_video.heads.mlp import UsamHead

__all__ = [
    "DEFAULT_TOKEN_DIM",
    "GAP_HEADS",
    "GAP_SHIFT",
    "HEAD_NAMES",
    "MANIFEST_FILE",
    "PAIRINGS",
    "HeadInputs",
    "HeadSet",
    "HeadsManifest",
    "Pairing",
    "UsamHead",
    "heads_from_config",
    "load_heads",
    "manifest_in_force",
    "random_heads",
    "read_manifest",
    "save_heads",
    "token_index",
    "write_manifest",
]
