"""Alternative encodings of mask arrays, for the storage benchmark (``usam_video.bench.storage``).

The store itself uses zstd level 0 (zarr's default for bool) followed by a CRC-32C checksum
(:func:`usam_video.store.checksums.checksummed_codecs`); this module writes the same masks
with other codecs (and one shard per frame) so that their bytes and speed can be compared, while
zarr stays imported only under ``usam_video/store``.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from usam_video.store.checksums import checksummed_codecs
from usam_video.store.chunks import ChunkWriter
from usam_video.store.zarr_store import PseudoLabelStore, mask_layout
from usam_video.types import VideoRef

__all__ = [
    "CHUNK_PER_FRAME",
    "MASK_LAYOUTS",
    "SHARD_PER_FRAME",
    "codec_variants",
    "read_masks",
    "store_uses_default_codecs",
    "write_mask_layout",
    "write_masks",
    "write_small_blocks",
]

#: Key in a variant asking for ``shards=(1, O, H, W)`` (one file per frame).
SHARD_PER_FRAME = "shard_per_frame"
#: Key in a variant asking for ``chunks=(1, O, H, W)`` (one chunk and file per frame).
CHUNK_PER_FRAME = "chunk_per_frame"


def codec_variants() -> dict[str, dict[str, Any]]:
    """Keyword arguments of ``zarr.create_array`` for each codec tried (``zstd-0 (store)`` is what
    the store uses: zarr's default zstd-0 plus a CRC-32C per chunk, one chunk per frame; the
    ``(before)`` variant is the same codecs in the layout used before shards). ``shard_per_frame:
    True`` asks for ``shards=(1, O, H, W)``, ``chunk_per_frame: True`` for ``chunks=(1, O, H, W)``."""
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec
    from zarr.codecs.numcodecs import PackBits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "numcodecs codecs are not in the Zarr v3 specification"
        packbits = PackBits()
    return {
        "zstd-0 (store)": {CHUNK_PER_FRAME: True, **checksummed_codecs()},
        "zstd-0 + CRC per frame-object (before)": checksummed_codecs(),
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
    options = {k: v for k, v in variant.items() if k not in (SHARD_PER_FRAME, CHUNK_PER_FRAME)}
    if variant.get(SHARD_PER_FRAME):
        options["shards"] = (1, o, h, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = zarr.create_array(
            store=str(path),
            shape=(t_, o, h, w),
            chunks=(1, o, h, w) if variant.get(CHUNK_PER_FRAME) else (1, 1, h, w),
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
    """True if the store's masks array uses the codecs and layout of the ``zstd-0 (store)``
    variant (zstd-0 + CRC-32C per chunk, one chunk per frame)."""
    pseudo = PseudoLabelStore.open(workdir / "codec-check")
    pseudo.begin_video(VideoRef("bench", "v", 1, 8, 8), (1,), ("s",), (), {}, "x").abort()
    stored = zarr.open_array(str(workdir / "codec-check" / "videos" / "v" / "masks"), mode="r")
    default = zarr.create_array(
        store=str(workdir / "codec-default"),
        shape=(1, 1, 8, 8),
        dtype="bool",
        fill_value=False,
        **mask_layout(1, 8, 8),
        **checksummed_codecs(),
    )
    return repr(getattr(stored.metadata, "codecs", None)) == repr(getattr(default.metadata, "codecs", 0))


#: The masks layouts the storage benchmark compares for per-frame writes: frames per chunk (or
#: shard) and whether the objects of those frames share one shard (one file).
MASK_LAYOUTS: dict[str, dict[str, Any]] = {
    "chunks (1,1,H,W) (before)": {"frames": 1, "shard": False},
    "shard (1,O,H,W) (before #17)": {"frames": 1, "shard": True},
    "chunks (8,1,H,W)": {"frames": 8, "shard": False},
    "shard (8,O,H,W)": {"frames": 8, "shard": True},
    "chunk (1,O,H,W) via zarr": {"frames": 1, "shard": False, "all_objects": True},
    "chunk (1,O,H,W) (store)": {"frames": 1, "shard": False, "all_objects": True, "chunk_writer": True},
}


def write_mask_layout(path: Path, pool: np.ndarray, num_frames: int, layout: str) -> float:
    """Write ``num_frames`` frames of masks (frame ``t`` is ``pool[t % len(pool)]``, ``bool``
    ``(P, O, H, W)``) in one of :data:`MASK_LAYOUTS`, with the store's codecs, as a writer gets
    them: frame by frame, or a block of frames at a time (held in memory until full). The
    store's own layout writes as its writer thread does (:class:`~usam_video.store.chunks.ChunkWriter`).
    Returns the seconds spent writing (creating the array excluded)."""
    _, o, h, w = pool.shape
    spec = MASK_LAYOUTS[layout]
    block = int(spec["frames"])
    # In a shard, inner chunks stay per frame-object (one object's mask still reads alone).
    shape: dict[str, Any] = {"chunks": (block, 1, h, w)}
    if spec["shard"]:
        shape = {"chunks": (1, 1, h, w), "shards": (block, o, h, w)}
    elif spec.get("all_objects"):
        shape = {"chunks": (block, o, h, w)}
    array = zarr.create_array(
        store=str(path),
        shape=(num_frames, o, h, w),
        dtype="bool",
        fill_value=False,
        **shape,
        **checksummed_codecs(),
    )
    fast = ChunkWriter.for_array(array) if spec.get("chunk_writer") else None
    frames = np.arange(num_frames) % len(pool)
    start = time.perf_counter()
    for first in range(0, num_frames, block):
        values = pool[frames[first : first + block]]
        if fast is None or not fast.write(slice(first, first + block), values):
            array[first : first + block] = values
    return time.perf_counter() - start


def write_small_blocks(
    path: Path, num_frames: int, num_objects: int, block: int, num_scores: int = 12, candidates: int = 4
) -> float:
    """Write the store's six small arrays (scores, reason, source, revision, candidate scores
    with ``candidates`` tokens of 3 scores, status) of ``num_frames`` frames in chunks of
    ``block`` frames of every object, one whole block at a time; ``block`` 1 is the layout used
    before blocks: chunks ``(1, 1, ...)``, one frame at a time. Returns the seconds spent
    writing."""
    rng = np.random.default_rng(0)
    group = zarr.open_group(str(path), mode="w")
    shapes = {
        "scores": ((num_scores,), "float32"),
        "reason": ((), "uint8"),
        "source": ((), "uint8"),
        "revision": ((), "uint32"),
        "candidate_scores": ((candidates, 3), "float32"),
        "status": ((), "uint8"),
    }
    arrays = {}
    values = {}
    for name, (tail, dtype) in shapes.items():
        chunks = (1, 1, *tail) if block == 1 else (block, num_objects, *tail)
        arrays[name] = group.create_array(
            name, shape=(num_frames, num_objects, *tail), chunks=chunks, dtype=dtype, fill_value=0,
            **checksummed_codecs(),
        )  # fmt: skip
        values[name] = (rng.random((num_frames, num_objects, *tail)) * 200).astype(dtype)
    start = time.perf_counter()
    for first in range(0, num_frames, block):
        for name in shapes:  # status last, as the writer does
            arrays[name][first : first + block] = values[name][first : first + block]
    return time.perf_counter() - start
