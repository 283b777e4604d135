"""Prove a pseudo-label store intact: read every chunk of every array and check its CRC-32C.

Each array of a store written since checksums existed ends every chunk with a CRC-32C of its
compressed bytes (:func:`usam_video.store.checksums.checksummed_codecs`), so a flipped byte, a
truncated or zeroed chunk fails to decode instead of yielding other pixels or scores. Metadata
(``zarr.json``) has no checksum: it is checked by parsing it and by comparing a video's
attributes with its arrays' shapes. What this cannot see: a chunk file deleted outright
reads as the fill value (zarr does not store empty chunks, so an absent chunk is legitimate),
except in ``status``, where a complete video must have no frame-object left pending.

Arrays written before checksums are read too (a codec error is still damage) but reported
"unverifiable": nothing proves their bytes are the ones written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from usam_video.store.checksums import describe_read_error, is_checksummed
from usam_video.types import Status

__all__ = ["ArrayCheck", "VerifyReport", "verify_store"]


@dataclass(frozen=True)
class ArrayCheck:
    """One array (or one group's metadata) checked.

    Attributes:
        path: the node's path in the store, e.g. ``videos/bear/status``.
        video_id: the video it belongs to ("" for the root).
        chunks: chunks read.
        checksummed: every chunk carries a CRC-32C (False: written before checksums).
        damaged: one message per damaged chunk or metadata document, naming it.
    """

    path: str
    video_id: str
    chunks: int
    checksummed: bool
    damaged: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyReport:
    """Every node checked by :func:`verify_store`."""

    location: str
    checks: tuple[ArrayCheck, ...]

    @property
    def problems(self) -> list[str]:
        """Every damaged chunk or metadata document, ``<path>: <what>``."""
        return [f"{c.path}: {d}" for c in self.checks for d in c.damaged]

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def unverifiable(self) -> list[str]:
        """Paths of arrays without checksums (written before checksums existed)."""
        return [c.path for c in self.checks if not c.checksummed]

    @property
    def status(self) -> str:
        """``damaged``, ``unverifiable`` (nothing damaged found, but some arrays have no
        checksums) or ``intact``."""
        if self.problems:
            return "damaged"
        return "unverifiable" if self.unverifiable else "intact"

    @property
    def chunks(self) -> int:
        return sum(c.chunks for c in self.checks)


def _chunk_name(array: zarr.Array, coords: tuple[int, ...]) -> str:
    """A chunk named by its key and what it holds: ``chunk c/2/0/0/0 (frame 2)``,
    ``chunk c/2/0 (frame 2, object index 0)``, ``chunk c/0/0 (frames 0-31)``; an inner chunk of
    a shard also names the shard's file."""
    key = "c/" + "/".join(str(c) for c in coords)
    shards = getattr(array, "shards", None)
    if shards is not None:
        shard = "c/" + "/".join(str(c * i // s) for c, i, s in zip(coords, array.chunks, shards, strict=True))
        key = f"{key} in shard {shard}"
    if array.ndim >= 2 and array.chunks[:2] == (1, 1):
        return f"chunk {key} (frame {coords[0]}, object index {coords[1]})"
    if array.ndim == 4 and array.chunks[0] == 1:  # a video's masks: one chunk per frame
        return f"chunk {key} (frame {coords[0]})"
    if array.ndim >= 1 and array.chunks[0] == 1:
        return f"chunk {key} (entry {coords[0]})"
    if array.ndim >= 2 and array.chunks[0] > 1:  # a block of frames (the small arrays)
        first = coords[0] * array.chunks[0]
        last = min(first + array.chunks[0], array.shape[0]) - 1
        return f"chunk {key} (frames {first}-{last})"
    return f"chunk {key}"


def _check_array(array: zarr.Array, path: str, video_id: str) -> ArrayCheck:
    """Read ``array`` chunk by chunk (every chunk of one leading index at a time, then one by one
    where that fails, to name each damaged chunk) and collect the failures."""
    grid = tuple(int(np.ceil(s / c)) if s else 0 for s, c in zip(array.shape, array.chunks, strict=True))
    damaged: list[str] = []
    read = 0
    if array.ndim == 0 or 0 in grid:
        return ArrayCheck(path, video_id, 0, is_checksummed(array))
    step = array.chunks[0]
    for lead in range(grid[0]):
        rest = grid[1:]
        read += int(np.prod(rest)) if rest else 1
        try:
            array[lead * step : (lead + 1) * step]
            continue
        except Exception:  # locate the damaged chunks of this slab one by one
            pass
        for inner in np.ndindex(*rest) if rest else [()]:
            coords = (lead, *inner)
            selection: Any = tuple(
                slice(i * c, (i + 1) * c) for i, c in zip(coords, array.chunks, strict=True)
            )
            try:
                array[selection]
            except Exception as exc:
                damaged.append(f"{_chunk_name(array, coords)}: {describe_read_error(exc)}")
    return ArrayCheck(path, video_id, read, is_checksummed(array), tuple(damaged))


def _check_group(
    group_path: str, root: zarr.Group, video_id: str, metadata_only: tuple[str, ...] = ()
) -> tuple[zarr.Group | None, list[ArrayCheck]]:
    """Open a group and check each of its arrays (only the metadata of ``metadata_only``); a group
    or array whose metadata does not parse is one damaged entry."""
    try:
        group = root[group_path]
        names = sorted(group.array_keys())
    except Exception as exc:
        return None, [ArrayCheck(group_path, video_id, 0, True, (f"zarr.json: {describe_read_error(exc)}",))]
    checks = []
    for name in names:
        path = f"{group_path}/{name}"
        try:
            array = group[name]
        except Exception as exc:
            checks.append(ArrayCheck(path, video_id, 0, True, (f"zarr.json: {describe_read_error(exc)}",)))
            continue
        if name in metadata_only:
            checks.append(ArrayCheck(path, video_id, 0, is_checksummed(array)))
            continue
        checks.append(_check_array(array, path, video_id))
    return group, checks


def _attributes_disagree(group: zarr.Group, path: str, video_id: str) -> ArrayCheck | None:
    """Metadata has no checksum: a change that keeps ``zarr.json`` valid JSON is caught only when
    the attributes stop matching the arrays (frames, objects, size, score names)."""
    attrs = dict(group.attrs)
    missing = [k for k in ("video", "object_ids", "score_names", "reasons", "complete") if k not in attrs]
    if missing:
        return ArrayCheck(path, video_id, 0, True, (f"zarr.json: expected attributes {missing}, got none",))
    try:
        video = attrs["video"]
        t, o = int(video["num_frames"]), len(attrs["object_ids"])
        expected = {
            "masks": (t, o, int(video["height"]), int(video["width"])),
            "scores": (t, o, len(attrs["score_names"])),
            **{name: (t, o) for name in ("status", "reason", "source", "revision")},
        }
        arrays = set(group.array_keys())
        wrong = [
            f"{name} {tuple(group[name].shape)} (attributes say {shape})"
            for name, shape in expected.items()
            if name in arrays and tuple(group[name].shape) != shape
        ]
    except Exception as exc:  # a wrong type where a number or list belongs
        return ArrayCheck(
            path, video_id, 0, True, (f"zarr.json: unreadable attributes: {describe_read_error(exc)}",)
        )
    if not wrong:
        return None
    return ArrayCheck(
        path,
        video_id,
        0,
        True,
        (f"zarr.json: expected attributes matching the arrays, got {'; '.join(wrong)}",),
    )


def _pending_in_complete(group: zarr.Group, path: str, video_id: str) -> ArrayCheck | None:
    """A complete video with frame-objects never written: its status chunks went missing."""
    if not group.attrs.get("complete") or "status" not in group.array_keys():
        return None
    try:
        status = group["status"][:]
    except Exception:
        return None  # already reported chunk by chunk
    pending = np.argwhere(status == Status.PENDING)
    if not len(pending):
        return None
    ct, co = group["status"].chunks[:2]
    keys = sorted({(t // ct, o // co) for t, o in pending.tolist()})
    listed = ", ".join(f"c/{t}/{o}" for t, o in keys[:10])
    more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
    where = ", ".join(f"frame {t} object index {o}" for t, o in pending[:10].tolist())
    if len(pending) > 10:
        where += f" and {len(pending) - 10} more"
    return ArrayCheck(
        f"{path}/status",
        video_id,
        0,
        True,
        (
            f"chunks {listed}{more}: expected every frame-object written in a complete video, "
            f"got none for {where}",
        ),
    )


def verify_store(
    root: zarr.Group,
    location: str,
    list_nodes: Callable[[str], list[str]],
    video_id: str | None = None,
    metadata_only: tuple[str, ...] = (),
) -> VerifyReport:
    """Check the ``videos`` group's metadata and every video's arrays and history (or one
    video's), reading every chunk; of the arrays named in ``metadata_only`` (of the videos'
    groups) only the metadata (a caller that reads those chunks itself checks their CRC then).

    The store's own :meth:`~usam_video.store.zarr_store.PseudoLabelStore.verify` is the way in:
    it hands over its Zarr ``root``, its ``location`` and ``list_nodes`` (names of the nodes
    under a path, from the store's listing, so one damaged ``zarr.json`` neither hides its video
    nor breaks the walk), and has already refused a ``video_id`` it does not hold. Taking these
    rather than the store keeps this checker below the store: the store imports it, never the
    other way round.
    """
    checks: list[ArrayCheck] = []
    for node in ("videos", "history"):
        try:
            if node in set(list_nodes("")):
                root[node]
        except Exception as exc:
            checks.append(ArrayCheck(node, "", 0, True, (f"zarr.json: {describe_read_error(exc)}",)))
    videos = set(list_nodes("videos"))
    history = set(list_nodes("history"))
    for vid in [video_id] if video_id is not None else sorted(videos | history):
        if vid in videos:
            group, found = _check_group(f"videos/{vid}", root, vid, metadata_only)
            checks.extend(found)
            if group is not None and not any(c.damaged and c.path == f"videos/{vid}" for c in found):
                for extra in (
                    _attributes_disagree(group, f"videos/{vid}", vid),
                    _pending_in_complete(group, f"videos/{vid}", vid),
                ):
                    if extra is not None:
                        checks.append(extra)
        if vid in history:
            checks.extend(_check_group(f"history/{vid}", root, vid)[1])
    return VerifyReport(location, tuple(checks))
