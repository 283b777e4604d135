"""Chunk checksums of the store's arrays: the codecs that write them and how a failed read reads.

Every chunk is zstd-compressed and then carries a CRC-32C of the compressed bytes (zarr's
``crc32c`` codec), so a damaged chunk fails to read instead of decoding to other pixels.
"""

from __future__ import annotations

from typing import Any

import zarr
from zarr.codecs import Crc32cCodec, ShardingCodec, ZstdCodec

__all__ = ["checksummed_codecs", "describe_read_error", "is_checksummed"]


def checksummed_codecs() -> dict[str, Any]:
    """``create_array`` keyword arguments of every store array: zarr's default zstd level 0 (the
    storage benchmark's choice for masks), then a CRC-32C of the compressed bytes, so that a
    damaged chunk is detected before zstd or numpy ever see it."""
    return {"compressors": (ZstdCodec(level=0), Crc32cCodec())}


def describe_read_error(exc: BaseException) -> str:
    """A short account of why zarr could not read a chunk or a metadata document."""
    text = str(exc).rstrip(".")
    if "checksum do not match" in text:  # zarr's Crc32cCodec
        return "CRC-32C checksum mismatch (the chunk's bytes changed after they were written)"
    return f"{type(exc).__name__}: {text}"


def is_checksummed(array: zarr.Array) -> bool:
    """True if every chunk of ``array`` carries a CRC-32C (arrays written before checksums do not).

    In a sharded array (the masks of stores written before issue #17) that is every inner
    chunk: the shard's own index always carries one, so it is the inner codecs that count."""
    codecs = array.metadata.codecs
    while len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        codecs = codecs[0].codecs
    return any(isinstance(codec, Crc32cCodec) for codec in codecs)
