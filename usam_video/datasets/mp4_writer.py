"""A minimal Motion-JPEG-in-MP4 writer: Pillow encodes each frame, numpy-free box packing muxes.

Why it exists: tests and demos need mp4 files that decord (FFmpeg) can open, but no encoder is
a dependency of this project (PyAV, OpenCV and imageio-ffmpeg are absent, and torchvision
0.29 dropped ``torchvision.io.write_video``). An ISO base media file whose one video track
holds one JPEG per sample (sample entry ``jpeg``, the QuickTime Photo-JPEG tag that FFmpeg's
mov/mp4 demuxer maps to its MJPEG decoder) needs only Pillow. Every frame is a key frame, so
random access is exact and cheap.

The file is laid out ``ftyp``, ``moov``, ``mdat`` ("fast start") by default, or with ``moov``
last (``moov_last=True``, the layout most encoders write and the one a truncated download
loses its index in). Frames are consumed from an iterable and written as they come, so a
long video never sits in memory; only the per-frame sizes are kept until the index is built.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from usam_video.errors import InputError

__all__ = ["write_mjpeg_mp4"]

# 1.0 in 16.16 fixed point and the identity transform of mvhd/tkhd (ISO 14496-12 8.2.2).
_ONE_16_16 = 0x00010000
_IDENTITY = struct.pack(">9I", _ONE_16_16, 0, 0, 0, _ONE_16_16, 0, 0, 0, 0x40000000)


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def _moov(sizes: list[int], first_offset: int, width: int, height: int, timescale: int, delta: int) -> bytes:
    """The movie header and sample tables of one MJPEG track, one sample per chunk."""
    count = len(sizes)
    duration = count * delta
    offsets = np.concatenate([[0], np.cumsum(sizes[:-1], dtype=np.int64)]) + first_offset
    if offsets[-1] + sizes[-1] >= 2**32:
        raise InputError(f"write_mjpeg_mp4: expected under 4 GiB of frames, got {offsets[-1]} bytes.")
    mvhd = _full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, timescale, duration),
        struct.pack(">IH", _ONE_16_16, 0x0100), bytes(10), _IDENTITY, bytes(24),
        struct.pack(">I", 2),  # next track id
    )  # fmt: skip
    tkhd = _full_box(
        b"tkhd", 0, 0x3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, 1, 0, duration), bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0), _IDENTITY,
        struct.pack(">II", width << 16, height << 16),
    )  # fmt: skip
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, b"vide"), bytes(12), b"VideoHandler\0")
    vmhd = _full_box(b"vmhd", 0, 1, bytes(8))
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
    sample_entry = _box(
        b"jpeg",
        bytes(6), struct.pack(">H", 1),  # reserved, data reference index
        bytes(16), struct.pack(">HH", width, height),
        struct.pack(">III", 0x00480000, 0x00480000, 0),  # 72 dpi, reserved
        struct.pack(">H", 1), bytes(32),  # frames per sample, compressor name
        struct.pack(">Hh", 0x18, -1),  # depth, pre-defined
    )  # fmt: skip
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, count, delta)),
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, 1, 1)),
        _full_box(b"stsz", 0, 0, struct.pack(">II", 0, count), np.asarray(sizes, ">u4").tobytes()),
        _full_box(b"stco", 0, 0, struct.pack(">I", count), offsets.astype(">u4").tobytes()),
    )
    minf = _box(b"minf", vmhd, dinf, stbl)
    return _box(b"moov", mvhd, _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf)))


def write_mjpeg_mp4(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float = 24.0,
    quality: int = 75,
    moov_last: bool = False,
) -> int:
    """Write RGB frames as a Motion-JPEG mp4 that decord/FFmpeg read back frame-exactly in count.

    Args:
        path: output file (parent folders are created).
        frames: ``uint8`` ``(H, W, 3)`` RGB arrays, all of one size; consumed lazily.
        fps: frame rate (stored as a fraction with denominator <= 1001, so 23.976 works).
        quality: JPEG quality 1..95 (pixels come back JPEG-compressed, not bit-exact).
        moov_last: put the index after the frames instead of before them.

    Returns:
        The number of frames written.

    Raises:
        InputError: no frames, a frame of another shape or dtype, or a bad ``fps``/``quality``.
    """
    path = Path(path)
    if not (fps > 0 and 1 <= quality <= 95):
        raise InputError(f"write_mjpeg_mp4: expected fps > 0 and quality in 1..95, got {fps}, {quality}.")
    # An exact rational rate (24 -> 24/1, 23.976 -> 24000/1001) so readers report it exactly.
    rate = Fraction(fps).limit_denominator(1001)
    timescale, delta = rate.numerator, rate.denominator
    path.parent.mkdir(parents=True, exist_ok=True)
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2mp41")
    sizes: list[int] = []
    shape: tuple[int, ...] | None = None
    # JPEGs go to a spool file first: with the index in front their offsets depend on the
    # index size, which is known only once every frame is encoded.
    with tempfile.TemporaryFile(dir=path.parent) as spool:
        for frame in frames:
            frame = np.asarray(frame)
            if shape is None:
                shape = frame.shape
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or frame.shape != shape:
                raise InputError(
                    f"{path}: expected uint8 (H, W, 3) frames all of shape {shape}, got "
                    f"{frame.dtype} {frame.shape} at frame {len(sizes)}."
                )
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
            sizes.append(buffer.tell())
            spool.write(buffer.getbuffer())
        if shape is None:
            raise InputError(f"{path}: expected at least one frame, got none.")
        height, width = shape[0], shape[1]
        mdat_header = struct.pack(">I4s", 8 + sum(sizes), b"mdat")
        if moov_last:
            moov = _moov(sizes, len(ftyp) + 8, width, height, timescale, delta)
        else:
            # The moov size does not depend on the offsets' values, only on their count.
            size = len(_moov(sizes, 0, width, height, timescale, delta))
            moov = _moov(sizes, len(ftyp) + size + 8, width, height, timescale, delta)
        spool.seek(0)
        temporary = path.with_name(path.name + ".partial")
        with open(temporary, "wb") as out:
            out.write(ftyp)
            if not moov_last:
                out.write(moov)
            out.write(mdat_header)
            while chunk := spool.read(1 << 20):
                out.write(chunk)
            if moov_last:
                out.write(moov)
        os.replace(temporary, path)
    return len(sizes)
