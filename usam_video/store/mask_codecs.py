"""Alternative encodings of mask arrays, for the storage benchmark (``usam_video.bench.storage``).

The store itself uses zstd level 0 (zarr's default for bool) followed by a CRC-32C checksum
(:func:`usam_video.store.checksums.checksummed_codecs`); this module writes the same masks
with other codecs (and one shard per frame) so that their bytes and speed can be compared, while
zarr stays imported only under ``usam_video/store``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from usam_video.store.checksums import checksummed_codecs
from usam_video.store.zarr_store import PseudoLabelStore
from usam_video.types import VideoRef

__all__ = ["SHARD_PER_FRAME", "codec_variants", "write_masks", "read_masks", "store_uses_default_codecs"]

#: Key in a variant asking for ``shards=(1, O, H, W)`` (one file per frame).
SHARD_PER_FRAME = "shard_per_frame"


def codec_variants() -> dict[str, dict[str, Any]]:
    """Keyword arguments of ``zarr.create_array`` for each codec tried (``zstd-0 (store)`` is what
    the store uses: zarr's default zstd-0 plus a CRC-32C per chunk). ``shard_per_frame: True``
    asks for ``shards=(1, O, H, W)``."""
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec
    from zarr.codecs.numcodecs import PackBits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "numcodecs codecs are not in the Zarr v3 specification"
        packbits = PackBits()
    return {
        "zstd-0 (store)": checksummed_codecs(),
        "zstd-3": {"compressors": [ZstdCodec(level=3)]},
        "zstd-9": {"compressors": [ZstdCodec(level=9)]},
        "zstd-19": {"compressors": [ZstdCodec(level=19)]},
        "gzip-6": {"compressors": [GzipCodec(level=6)]},
        "blosc-zstd-5 bitshuffle": {
            "compressors": [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle", typesize=1)]
        },
        "packbits + zstd-0": {"filters": [packbits], "compressors": [ZstdCodec(level=0)]},
        "packbits + zstd-3": {"filters": [packbits], "compressors": [ZstdCodec(level=3)]},
        "packbits + zstd-9": {"filters": [packbits], "compressors": [ZstdCodec(level=9)]},
        # One shard (file) per frame holding one inner chunk per object: per-object reads stay
        # partial, but a frame of O objects is one file, not O (small files waste disk blocks).
        "shard/frame, zstd-0": {SHARD_PER_FRAME: True},
        "shard/frame, packbits + zstd-0": {
            SHARD_PER_FRAME: True,
            "filters": [packbits],
            "compressors": [ZstdCodec(level=0)],
        },
    }


def write_masks(path: Path, masks: np.ndarray, variant: dict[str, Any]) -> None:
    """Write ``bool`` ``(T, O, H, W)`` masks frame by frame with the store's chunking
    ``(1, 1, H, W)`` and the codecs of ``variant`` (one of :func:`codec_variants`)."""
    t_, o, h, w = masks.shape
    options = {k: v for k, v in variant.items() if k != SHARD_PER_FRAME}
    if variant.get(SHARD_PER_FRAME):
        options["shards"] = (1, o, h, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = zarr.create_array(
            store=str(path),
            shape=(t_, o, h, w),
            chunks=(1, 1, h, w),
            dtype="bool",
            fill_value=False,
            **options,
        )
        for t in range(t_):
            array[t] = masks[t]


def read_masks(path: Path) -> np.ndarray:
    """``bool`` ``(T, O, H, W)``: what :func:`write_masks` wrote."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return zarr.open_array(str(path), mode="r")[:]


def store_uses_default_codecs(workdir: Path) -> bool:
    """True if the store's masks array uses the codecs of the ``zstd-0 (store)`` variant."""
    pseudo = PseudoLabelStore.open(workdir / "codec-check")
    pseudo.begin_video(VideoRef("bench", "v", 1, 8, 8), (1,), ("s",), (), {}, "x")
    stored = zarr.open_array(str(workdir / "codec-check" / "videos" / "v" / "masks"), mode="r")
    default = zarr.create_array(
        store=str(workdir / "codec-default"),
        shape=(1, 1, 8, 8),
        chunks=(1, 1, 8, 8),
        dtype="bool",
        fill_value=False,
        **checksummed_codecs(),
    )
    return repr(getattr(stored.metadata, "codecs", None)) == repr(getattr(default.metadata, "codecs", 0))
