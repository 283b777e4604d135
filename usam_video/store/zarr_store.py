"""The Zarr v3 pseudo-label store: one group per video, written frame by frame.

Layout (``O`` objects, ``T`` frames, ``S`` score columns)::

    <store>/                      attrs: format, format_version
      videos/<video_id>/          attrs: video, object_ids, score_names, reasons,
                                         provenance, fingerprint, complete
        masks   bool    (T, O, H, W)  chunks (1, O, H, W): one file per frame
        scores  float32 (T, O, S)     chunks (B, O, S)   NaN until written
        status  uint8   (T, O)        chunks (B, O)      usam_video.types.Status
        reason  uint8   (T, O)        chunks (B, O)      0 none, i+1 = reasons[i]
        candidate_scores float32 (T, O, K, C) chunks (B, O, K, C)  every decoder token's
                scores (attr candidate_score_names); absent when a run stores none
        source    uint8  (T, O)       chunks (B, O)      usam_video.types.MaskSource
        revision  uint32 (T, O)       chunks (B, O)      write generation of the mask
      history/<video_id>/         masks replaced by refinements and corrections (kept across
        masks   bool   (N, H, W)       chunks (1, H, W)   relabelling of the video)
        meta    int64  (N, 5)          frame, object id, revision, source, status
                                       of each replaced mask

Every write batch (labelling a video, one import, one refinement) takes a new generation and
stamps it in ``revision``: an export records revisions, and an import whose frame-objects were
rewritten since is refused. Generations are kept per video, in the group's ``generation``
attribute: a write takes one more than the highest generation of the videos it touches (and of
the ``generation`` counter that stores written before per-video generations kept in the root's
attributes, read but never written now), records it in those videos' attributes before any mask,
and stamps it. So a mask's revision only grows, and writers of different videos never read and
rewrite a shared document (many hosts label one object store). A named batch (an import) is
recorded in its own group ``batches/<batch_id>`` (root attribute ``batches`` in older stores,
still read). :attr:`PseudoLabelStore.generation`, a release's number, is derived from the
videos' generations. A video group deleted by hand starts again at the legacy counter plus one:
export its frames again after that.

Every chunk of every array is zstd-compressed and then carries a CRC-32C checksum (zarr's
``crc32c`` codec), so a damaged chunk fails to read instead of decoding to other pixels or
scores; ``verify`` checks every chunk. Stores written before checksums stay readable and are
reported "unverifiable". The root holds a ``store_id`` (a UUID written at creation) that exports
carry, so an import can tell its own store from another. Every read turns a codec or JSON
error into a :class:`StoreError` naming the store, the video and the array.

``B`` is :data:`usam_video.store.writer.BLOCK_FRAMES` (32; fewer for a shorter video): the small
arrays are written a block of frames at a time by the writer thread (:mod:`.writer`). Masks are
one chunk (file) per frame holding every object (:func:`mask_layout`), so rewriting one
frame-object (a refinement, a human correction) rewrites that frame's chunk only. Stores written
before (masks in one shard per frame, or every array chunked ``(1, 1, ...)``) read the same:
readers go through zarr's array API. Objects may overlap (SA-V
masklets do): each object has its own mask plane. A video is complete only once ``complete`` is
set after its last frame landed; a group found incomplete was interrupted and is rewritten from
scratch by the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import zarr
import zarr.errors
from zarr.core.sync import sync

from usam_video.errors import (
    DamagedVideoError,
    InputError,
    StoreError,
    StoreNotFoundError,
    UsamVideoError,
    VideoNotFoundError,
    store_write_error,
)
from usam_video.store.checksums import checksummed_codecs, describe_read_error, is_checksummed
from usam_video.store.claims import (
    LEASE_S,
    Claim,
    ClaimRenewal,
    claim_video,
    clean_claims,
    list_claims,
    release_video,
)
from usam_video.store.index import (
    Consolidated,
    forget,
    marker_of,
    marker_versions,
    read_consolidated,
    touch,
    write_consolidated,
)
from usam_video.store.nodes import ArraySpec, create_video_nodes
from usam_video.store.records import FrameTable, HistoryEntry, VideoSummary, WriteBatch, WriteCounts
from usam_video.store.verify import VerifyReport, verify_store
from usam_video.store.writer import BLOCK_FRAMES, VideoWriter, stop_writer
from usam_video.types import MaskSource, MaskUpdate, QueueEntry, Status, VideoRef

# The records, the writer and the checksum helpers live in their own modules; re-exported here,
# where callers have always found them.
__all__ = [
    "STORE_FORMAT",
    "PseudoLabelStore",
    "VideoWriter",
    "VideoSummary",
    "FrameTable",
    "HistoryEntry",
    "WriteBatch",
    "WriteCounts",
    "checksummed_codecs",
    "mask_layout",
    "describe_read_error",
    "is_checksummed",
]

STORE_FORMAT = "usam-video-pseudo-labels"
STORE_FORMAT_VERSION = 1
_R = TypeVar("_R")
#: Videos that whole-store reads (summaries, the queue) read at once.
_CONCURRENT_VIDEOS = 16
_VIDEO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
# Cut a failure message kept in a video's attributes to this many characters.
_FAILURE_CHARS = 2000


def mask_layout(num_objects: int, height: int, width: int) -> dict[str, Any]:
    """``create_array`` chunking of a video's masks ``(T, O, H, W)``: one chunk per frame.

    Why (figures in BENCHMARKS.md section 4): one file per frame holding every object encodes
    in one pass, 2-3x less CPU than a shard per frame through zarr, and as a plain chunk it is
    written by :class:`~usam_video.store.chunks.ChunkWriter` without zarr's per-call machinery,
    which matters on the writer thread beside SAM 2's (they share the interpreter lock);
    rewriting one frame-object (a refinement, a correction) rewrites that frame's chunk only.
    What it gives up: reading one object's mask decodes the frame's ``O`` masks, and the
    CRC-32C is per frame rather than per frame-object (``verify`` names the frame). Frames are
    not blocked together: a block would hold ``8 x O x H x W`` bytes (127 MiB at 1080p with 8
    objects) and a one-object correction would rewrite 8 frames. Stores written with shards or
    per-object chunks read the same (readers go through zarr's array API).
    """
    return {"chunks": (1, max(num_objects, 1), height, width)}


def _video_array_specs(t: int, o: int, s: int, h: int, w: int, c: int, k: int) -> dict[str, ArraySpec]:
    """The arrays of a video's group: ``t`` frames, ``o`` objects, ``s`` scores, ``h x w`` masks,
    ``c`` candidate scores for each of ``k`` candidate masks (``candidate_scores`` only if both)."""
    crc = checksummed_codecs()["compressors"]
    mask_chunks = mask_layout(o, h, w)["chunks"]
    specs = {"masks": ArraySpec((t, o, h, w), mask_chunks, "bool", False, crc)}
    # Small arrays in blocks of frames, all objects in one chunk (see writer.BLOCK_FRAMES).
    b, ob = max(1, min(BLOCK_FRAMES, t)), max(o, 1)
    specs["scores"] = ArraySpec((t, o, s), (b, ob, max(s, 1)), "float32", np.nan, crc)
    small = (("status", "uint8"), ("reason", "uint8"), ("source", "uint8"), ("revision", "uint32"))
    for name, dtype in small:
        specs[name] = ArraySpec((t, o), (b, ob), dtype, 0, crc)
    if c and k:
        specs["candidate_scores"] = ArraySpec((t, o, k, c), (b, ob, k, c), "float32", np.nan, crc)
    return specs


def _check_local_location(location: str, mode: str) -> None:
    """Refuse what a local store path must not be before zarr touches it: a regular file, or a
    non-empty folder that holds no Zarr group (a user's folder: never adopted, never written).

    Raises:
        StoreNotFoundError: nothing there, or an empty folder (``mode="r"`` only).
        StoreError: a regular file, or a folder of other files.
    """
    path = Path(location)
    if path.is_file() or (path.exists() and not path.is_dir()):
        raise StoreError(
            f"{location}: expected a usam-video store (a folder), got a regular file. "
            "Point 'store' at a new path, an empty folder or a store this tool wrote."
        )
    if not path.exists():
        if mode == "r":
            raise StoreNotFoundError(f"{location}: expected a usam-video Zarr store, found nothing.")
        return
    if (path / "zarr.json").exists():
        return  # a Zarr group: open() checks whose it is
    try:
        # A ".partial" file is zarr.json being written by a process creating the store now.
        entries = sorted(p.name for p in path.iterdir() if not p.name.endswith(".partial"))
    except OSError as exc:
        raise store_write_error(location, exc) from exc
    if not entries:
        if mode == "r":
            raise StoreNotFoundError(f"{location}: expected a usam-video Zarr store, found an empty folder.")
        return
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    raise StoreError(
        f"{location}: expected a usam-video store or an empty folder, got a folder of other files "
        f"({shown}). Point 'store' at a new path: usam-video never writes into a folder it did not create."
    )


def _members(root: zarr.Group) -> list[str]:
    """The names in a group's folder other than its ``zarr.json``, listed, never parsed."""

    async def names() -> list[str]:
        return sorted([n async for n in root.store.list_dir(root.store_path.path) if n != "zarr.json"])

    return sync(names())


def _zarr_options(location: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments that open ``location`` in zarr with the user's fsspec options.

    On ``s3://`` URLs s3fs's ``max_concurrency`` defaults to 1 unless given: s3fs (2026.x) with
    a higher one stats every whole-object read to decide whether to split it into concurrent
    ranged reads (a HEAD before each GET, and a HEAD that misses also lists), while a store's
    objects (a frame's mask chunk, a metadata document) are far below the 50 MB it splits at.
    That halved the requests of a video's reads on moto's S3 server (BENCHMARKS.md section 11).
    """
    options = dict(storage_options or {})
    if location.startswith(("s3://", "s3a://")):
        options.setdefault("max_concurrency", 1)
    return {"storage_options": options} if options else {}


def _require_group(parent: zarr.Group, name: str) -> zarr.Group:
    """``parent[name]``, created if absent, when other processes may create it at the same
    instant (two hosts opening a new store, two workers writing their first history): zarr's
    ``require_group`` looks, then creates with ``overwrite=False``, and the creator that comes
    second gets ``ContainsGroupError`` for a group that is just what it asked for."""
    try:
        return parent.require_group(name)
    except zarr.errors.ContainsGroupError:
        return parent[name]


@contextlib.contextmanager
def _writing(where: str) -> Iterator[None]:
    """Turn an OS error of a write (read-only, no space, not a directory) into a
    :class:`StoreWriteError` naming ``where`` and the OS's reason; our own errors pass through."""
    try:
        yield
    except UsamVideoError:
        raise
    except OSError as exc:
        raise store_write_error(where, exc) from exc


def _writes(method: Callable[..., _R]) -> Callable[..., _R]:
    """A store method whose OS errors (read-only, no space, not a directory) become one
    :class:`StoreWriteError` naming the store and the OS's reason (see :func:`_writing`)."""

    @functools.wraps(method)
    def wrapper(self: PseudoLabelStore, *args: Any, **kwargs: Any) -> _R:
        with _writing(self.location):
            return method(self, *args, **kwargs)

    return wrapper


class PseudoLabelStore:
    """A Zarr v3 store of pseudo-labels (see the module docstring for the layout)."""

    def __init__(self, root: zarr.Group, location: str, storage_options: Mapping[str, Any] | None = None):
        self._root = root
        self.location = location
        #: fsspec options of a URL store (endpoint, credentials), used again by its claims.
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self._videos: zarr.Group | None = None  # see _videos_group

    @classmethod
    def opened(cls, store: PseudoLabelStore | str | Path, mode: str = "r") -> PseudoLabelStore:
        """``store`` itself when it is already open (a run's steps share one), else the store at
        that path or URL opened in ``mode`` (see :meth:`open`)."""
        return store if isinstance(store, PseudoLabelStore) else cls.open(store, mode)

    @classmethod
    def open(
        cls, path: str | Path, mode: str = "a", storage_options: Mapping[str, Any] | None = None
    ) -> PseudoLabelStore:
        """Open (``mode="a"``, creating if absent) or read (``mode="r"``) a store.

        ``path`` is a local path, a ``file://`` URL, or any fsspec URL zarr accepts
        (``memory://`` in tests, ``s3://bucket/store.zarr`` with ``usam-video[s3]``).
        ``storage_options`` are the URL's fsspec options (for s3fs: ``endpoint_url``, ``key``,
        ``secret``, ``client_kwargs``...); without them s3fs reads the environment
        (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``...).

        Raises:
            InputError: ``storage_options`` given for a local path.
        """
        location = str(path).removeprefix("file://")
        is_url = "://" in location
        if not is_url:
            if storage_options:
                raise InputError(
                    f"{location}: expected storage_options only for a URL store (s3://...), got "
                    f"{sorted(storage_options)} for a local path. Remove them, or give the store's URL."
                )
            _check_local_location(location, mode)
        options = _zarr_options(location, storage_options)
        try:
            try:
                root = zarr.open_group(location, mode=mode, **options)
            except zarr.errors.ContainsGroupError:
                # Another process created the store at the same instant: open what it made.
                root = zarr.open_group(location, mode="r+", **options)
        except FileNotFoundError as exc:
            raise StoreNotFoundError(f"{location}: expected a usam-video Zarr store, found nothing.") from exc
        except OSError as exc:  # read-only, no space, not a directory: the OS's reason, not zarr's
            raise store_write_error(location, exc) from exc
        except Exception as exc:  # zarr raises several types for foreign or broken folders
            raise StoreError(f"{location}: expected a Zarr v3 group, got: {exc}") from exc
        attrs = dict(root.attrs)
        if not attrs and _members(root):
            # A process creating the store writes its attributes before its first member: read
            # them again before calling the group someone else's.
            attrs = dict(zarr.open_group(location, mode="r", **options).attrs)
        if not attrs and mode != "r" and not _members(root):
            # A group with no attributes and nothing in it is one this call (or a concurrent
            # one) has just made; a group with members is someone else's and is never adopted.
            with _writing(location):
                root.attrs.update(
                    {
                        "format": STORE_FORMAT,
                        "format_version": STORE_FORMAT_VERSION,
                        "store_id": str(uuid.uuid4()),
                    }
                )
                _require_group(root, "videos")
        elif attrs.get("format") != STORE_FORMAT:
            found = f"attributes {sorted(attrs)}" if attrs else f"members {_members(root)[:5]}"
            raise StoreError(
                f"{location}: expected a usam-video store (attribute format={STORE_FORMAT!r}), "
                f"got another Zarr group ({found}). Point to a store this tool wrote, a new path "
                "or an empty folder: usam-video never writes into a Zarr group it did not create."
            )
        return cls(root, location, storage_options)

    @property
    def store_id(self) -> str | None:
        """The UUID written when the store was created; None for stores made before ids existed."""
        value = self._root.attrs.get("store_id")
        return str(value) if value else None

    @property
    def generation(self) -> int:
        """The store's write generation: grows with every labelling, refinement and import (a
        release numbers itself by it, so releasing an unchanged store gives the same number).

        It is the legacy root counter (0 for stores made since generations are per video) plus,
        for each video, how far its generation has gone past that counter: every write raises
        the generation of each video it touches by at least one, so every write raises this
        sum, and a store written before keeps its old number until written. Reads every video
        group's metadata once (one request per video on an object store).
        """
        floor = self._legacy_generation()
        total = floor
        for video_id in self.videos():
            total += max(0, self._recorded_generation(self._video_attrs(video_id)) - floor)
        return total

    def _legacy_generation(self) -> int:
        """The root's ``generation`` counter of a store written before per-video generations
        (0 otherwise): every revision such a store holds is at most this."""
        return int(self._root.attrs.get("generation", 0))

    # --- reading -------------------------------------------------------------------------
    def _damaged(self, video_id: str | None, what: str, exc: BaseException) -> StoreError:
        where = f"{self.location}: " + (f"video {video_id!r}, " if video_id is not None else "")
        return StoreError(
            f"{where}{what}: expected readable Zarr data, got {describe_read_error(exc)}. "
            f"Run 'usam-video verify {self.location}' to list every damaged array and chunk; restore "
            "the store from a copy, or delete the video's group and rerun to relabel it."
        )

    @contextlib.contextmanager
    def _reading(self, video_id: str | None, what: str) -> Iterator[None]:
        """Turn codec, checksum and JSON errors of zarr into a StoreError naming store, video and
        ``what`` (an array or the metadata); our own errors pass through."""
        try:
            yield
        except UsamVideoError:
            raise
        except Exception as exc:  # zarr raises ValueError, RuntimeError, JSONDecodeError, KeyError...
            raise self._damaged(video_id, what, exc) from exc

    def _node_names(
        self, path: str, only: Sequence[str] | None = None, known: Collection[str] = ()
    ) -> list[str]:
        """Names of the nodes under ``path`` (the videos, or a video's arrays), from the store's listing.

        Listing does not parse the children's metadata, so one damaged ``zarr.json`` neither hides
        its video nor breaks the listing (it fails, naming itself, when the video is read). A
        folder without its ``zarr.json`` is a concurrent writer's group not yet created: skipped.
        Those existence checks go :data:`_CONCURRENT_VIDEOS` at a time (one request each on an
        object store). ``only``: just those names, if they are nodes (no listing). ``known``:
        names listed that need no check (videos with a change marker, written after the group).
        """
        store = self._root.store
        base = "/".join(p for p in (self._root.store_path.path, path) if p)
        gate = asyncio.Semaphore(_CONCURRENT_VIDEOS)

        async def is_node(name: str) -> bool:
            if name in known:
                return True
            async with gate:
                return bool(await store.exists(f"{base}/{name}/zarr.json"))

        async def names() -> list[str]:
            if only is not None:
                listed = list(only)
            else:
                listed = [n async for n in store.list_dir(base) if n != "zarr.json"]
            found = await asyncio.gather(*(is_node(n) for n in listed))
            return [n for n, yes in zip(listed, found, strict=True) if yes]

        with self._reading(None, f"the listing of {path}/"):
            return sorted(sync(names()))

    def videos(self) -> list[str]:
        """Ids of every video with a group (complete or not), sorted."""
        return self._node_names("videos")

    def has_video(self, video_id: str) -> bool:
        """True if the video has a group (complete or not), as :meth:`videos` would list it.

        One existence check of the group's ``zarr.json``: the label loop asks this of every
        video it writes, and a listing checks every video's metadata (a request per video on an
        object store, so a run of N videos would make N^2 / 2 of them).
        """
        if not video_id or "/" in video_id or video_id in (".", ".."):
            return False
        key = "/".join(p for p in (self._root.store_path.path, "videos", video_id, "zarr.json") if p)
        with self._reading(video_id, f"the metadata of videos/{video_id}"):
            return bool(sync(self._root.store.exists(key)))

    def _videos_group(self) -> zarr.Group:
        """The ``videos`` group, read once per store object (it is never removed)."""
        if self._videos is None:
            self._videos = _require_group(self._root, "videos")
        return self._videos

    def _group_or_none(self, video_id: str) -> zarr.Group | None:
        """The video's group, or None if it has none: one read of its ``zarr.json`` (a miss is
        one request on an object store, where an existence check that misses also lists).

        Raises:
            StoreError: the group's metadata is damaged.
        """
        if not _VIDEO_ID.match(video_id):
            return None
        with self._reading(video_id, f"group metadata videos/{video_id}/zarr.json"):
            try:
                return self._root[f"videos/{video_id}"]
            except KeyError:
                return None

    def _group(self, video_id: str) -> zarr.Group:
        with self._reading(video_id, f"group metadata videos/{video_id}/zarr.json"):
            try:
                return self._root[f"videos/{video_id}"]
            except KeyError as exc:  # absent (a damaged zarr.json raises other errors)
                raise VideoNotFoundError(
                    f"{self.location}: expected video {video_id!r} in the store, found {self.videos()}."
                ) from exc

    def _read(self, video_id: str, group: zarr.Group, name: str, selection: Any = ...) -> np.ndarray:
        """``group[name][selection]``, with damage reported as a StoreError naming the array."""
        with self._reading(video_id, f"array {name!r}"):
            return group[name][selection]

    def _read_optional(self, video_id: str, group: zarr.Group, name: str) -> np.ndarray | None:
        """``group[name][...]``, or None when the group has no such array (damage is reported as
        :meth:`_read` reports it)."""
        with self._reading(video_id, f"array {name!r}"):
            try:
                array = group[name]
            except KeyError:
                return None
            return array[...]

    def _attrs(self, video_id: str, group: zarr.Group) -> dict[str, Any]:
        """The video group's attributes, checked for the keys every reader needs."""
        attrs = dict(group.attrs)
        missing = [k for k in ("video", "object_ids", "score_names", "reasons") if k not in attrs]
        if missing:
            raise self._damaged(video_id, "group attributes", KeyError(f"missing {missing}"))
        return attrs

    def is_complete(self, video_id: str, fingerprint: str | None = None) -> bool:
        """True if the video's last write landed (and, if given, under this config fingerprint)."""
        done = self.completed_under(video_id)
        return done is not None and (fingerprint is None or done == fingerprint)

    def completed_under(self, video_id: str) -> str | None:
        """The config fingerprint of the video's last write if it landed ("" if it recorded
        none); None if the video has no group or is incomplete. One read of its metadata."""
        group = self._group_or_none(video_id)
        if group is None or not group.attrs.get("complete"):
            return None
        return str(group.attrs.get("fingerprint") or "")

    def summary(self, video_id: str) -> VideoSummary:
        group = self._group(video_id)
        return self._summary_of(video_id, self._attrs(video_id, group), self._read(video_id, group, "status"))

    def _summary_of(self, video_id: str, attrs: Mapping[str, Any], status: np.ndarray) -> VideoSummary:
        """:meth:`summary` from a video group's attributes and its ``uint8`` ``(T, O)`` status."""
        counts = {s.label: int((status == s).sum()) for s in Status}
        with self._reading(video_id, "group attributes"):
            video = attrs["video"]
            return VideoSummary(
                video_id=video_id,
                complete=bool(attrs.get("complete")),
                num_frames=int(video["num_frames"]),
                height=int(video["height"]),
                width=int(video["width"]),
                object_ids=tuple(attrs["object_ids"]),
                score_names=tuple(attrs["score_names"]),
                status_counts=counts,
                provenance=dict(attrs.get("provenance", {})),
                fingerprint=str(attrs.get("fingerprint", "")),
                failure=str(attrs.get("failure", "")),
                fps=float(video["fps"]) if isinstance(video.get("fps"), int | float) else None,
                review_round=int(attrs.get("review_round", 1)),
            )

    def frame_table(self, video_id: str) -> FrameTable:
        group = self._group(video_id)
        attrs = self._attrs(video_id, group)
        # Older stores lack these arrays: each is looked up, not listed (one request either way).
        optional = {
            name: self._read_optional(video_id, group, name)
            for name in ("candidate_scores", "source", "revision")
        }
        return FrameTable(
            video_id=video_id,
            object_ids=tuple(attrs["object_ids"]),
            score_names=tuple(attrs["score_names"]),
            reasons=tuple(attrs["reasons"]),
            status=self._read(video_id, group, "status"),
            reason=self._read(video_id, group, "reason"),
            scores=self._read(video_id, group, "scores"),
            candidate_score_names=tuple(attrs.get("candidate_score_names", ())),
            candidate_scores=optional["candidate_scores"],
            source=optional["source"],
            revision=optional["revision"],
        )

    def read_masks(self, video_id: str, frame_index: int) -> np.ndarray:
        """``bool`` ``(O, H, W)`` masks of one frame."""
        group = self._group(video_id)
        with self._reading(video_id, "array 'masks'"):
            num_frames = group["masks"].shape[0]
        if not 0 <= frame_index < num_frames:
            raise InputError(
                f"video {video_id!r}: expected a frame in 0..{num_frames - 1}, got {frame_index}."
            )
        return self._read(video_id, group, "masks", frame_index)

    def iter_masks(
        self, video_id: str, frames: Sequence[int], block: int = 8
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(frame, bool (O, H, W) masks)`` for each of ``frames`` in turn, with the video's group
        and array opened once and consecutive frames read ``block`` at a time (one zarr call per
        block: a release reads every frame, and zarr's per-call work, not decoding, was most of
        its time; opening the array per frame, as :meth:`read_masks` does, was half of it)."""
        group = self._group(video_id)
        with self._reading(video_id, "array 'masks'"):
            array = group["masks"]
            num_frames = array.shape[0]
        wanted = [int(t) for t in frames]
        for t in wanted:
            if not 0 <= t < num_frames:
                raise InputError(f"video {video_id!r}: expected a frame in 0..{num_frames - 1}, got {t}.")
        i = 0
        while i < len(wanted):
            j = i + 1  # the run of consecutive frames starting at wanted[i], at most `block` long
            while j < len(wanted) and j - i < block and wanted[j] == wanted[j - 1] + 1:
                j += 1
            with self._reading(video_id, "array 'masks'"):
                masks = array[wanted[i] : wanted[j - 1] + 1]
            for offset in range(j - i):
                yield wanted[i + offset], masks[offset]
            i = j

    def _each_video(self, read: Callable[[str], _R], video_ids: Sequence[str]) -> list[_R]:
        """``[read(v) for v in video_ids]``, :data:`_CONCURRENT_VIDEOS` videos at a time: on an
        object store each video costs a few round trips, which threads overlap (zarr's I/O runs
        on its own event loop); the first error, in the videos' order, is raised."""
        if len(video_ids) <= 1:
            return [read(v) for v in video_ids]
        workers = min(_CONCURRENT_VIDEOS, len(video_ids))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="usam-read") as pool:
            return list(pool.map(read, video_ids))

    def summaries(self, video_ids: Sequence[str] | None = None) -> list[VideoSummary]:
        """:meth:`summary` of every video (or of ``video_ids``), in order.

        Every video's: from the summary index where it holds (store/index.py: a listing of the
        change markers and one ``index.json``), the others read from their groups, concurrently.
        """
        if video_ids is not None:
            return self._each_video(self.summary, list(video_ids))
        versions, consolidated = self._index()
        indexed, _ = self._indexed(self._video_names(versions), versions, consolidated)
        return list(indexed.values())

    def _indexed(
        self, names: Sequence[str], versions: Mapping[str, str], consolidated: Consolidated | None
    ) -> tuple[dict[str, VideoSummary], list[str]]:
        """``{video: summary}`` of ``names`` in order, from ``consolidated`` where its entry still
        holds, else read from the group (concurrently); and the videos read."""
        fresh = {v: consolidated.fresh(v, versions.get(v)) for v in names} if consolidated else {}
        stale = [v for v in names if fresh.get(v) is None]
        read = dict(zip(stale, self._each_video(self.summary, stale), strict=True))
        return {v: fresh.get(v) or read[v] for v in names}, stale

    def consolidate_index(self) -> int:
        """Write ``index.json``: every video's summary with the version of its change marker
        (taken first: a write racing this leaves its entry stale, never wrong). The videos whose
        entries still hold are not read again, and an index that still holds whole is not
        rewritten. Returns how many entries were read anew."""
        versions, consolidated = self._index()
        names = [v for v in self._video_names(versions) if v in versions]
        indexed, stale = self._indexed(names, versions, consolidated)
        entries = {v: (versions[v], summary) for v, summary in indexed.items()}
        if consolidated is None:
            unchanged = not entries
        else:
            unchanged = not stale and set(entries) == set(consolidated.entries)
        if unchanged:
            return 0  # a run that wrote nothing leaves the store as it was
        with _writing(self.location):
            sync(write_consolidated(self._root.store, self._root.store_path.path, entries))
        return len(stale)

    def _index(self) -> tuple[dict[str, str], Consolidated | None]:
        """The change markers' versions (listed first) and the consolidated summaries."""
        store, path = self._root.store, self._root.store_path.path
        with self._reading(None, "the summary index"):
            versions = sync(marker_versions(store, path))
            return versions, sync(read_consolidated(store, path)) if versions else None

    def _video_names(self, versions: Mapping[str, str]) -> list[str]:
        """:meth:`videos`, checking only the groups without a change marker (a marker is written
        after its group: one listing instead of a request per video)."""
        return self._node_names("videos", known=versions.keys())

    def _touch(self, video_id: str, summary: VideoSummary | None = None) -> None:
        """Rewrite the video's change marker (store/index.py) from its summary (read here unless
        the caller has it)."""
        content = marker_of(summary if summary is not None else self.summary(video_id))
        with _writing(self.location):
            sync(touch(self._root.store, self._root.store_path.path, video_id, content))

    def _finished(self, video_id: str, group: zarr.Group, status: np.ndarray) -> None:
        """A writer's finish: its video's marker, from what the writer holds (no read)."""
        self._touch(video_id, self._summary_of(video_id, self._attrs(video_id, group), status))

    def queue(self, video_id: str | None = None) -> list[QueueEntry]:
        """Every queued frame-object (for refinement or human review), read from the store itself:
        only the videos whose summary counts queued frame-objects (the summary index answers for
        most, see :meth:`summaries`), their status first; videos are read concurrently."""
        if video_id is not None:
            ids = [video_id]
        else:
            queued = (Status.QUEUED_REFINE.label, Status.QUEUED_HUMAN.label)
            ids = [s.video_id for s in self.summaries() if any(s.status_counts.get(q) for q in queued)]
        return [entry for entries in self._each_video(self._queue_of, ids) for entry in entries]

    def _queue_of(self, vid: str) -> list[QueueEntry]:
        """The queued frame-objects of one video (see :meth:`queue`)."""
        status = self._read(vid, self._group(vid), "status")
        if not np.isin(status, [Status.QUEUED_REFINE, Status.QUEUED_HUMAN]).any():
            return []  # most videos of a large run: their scores are never read
        table = self.frame_table(vid)
        plan = self.review_plan(vid)
        queued = np.isin(table.status, [Status.QUEUED_REFINE, Status.QUEUED_HUMAN])
        entries = []
        for t, o in zip(*np.nonzero(queued), strict=True):
            pick = plan.get((int(t), int(table.object_ids[o])))
            entries.append(
                QueueEntry(
                    video_id=vid,
                    frame_index=int(t),
                    object_id=int(table.object_ids[o]),
                    status=Status(int(table.status[t, o])),
                    reason=table.reason_label(int(table.reason[t, o])),
                    plan="" if pick is None else pick.get("reason", ""),
                    plan_round=None if pick is None else int(pick["round"]),
                    scores={n: float(v) for n, v in zip(table.score_names, table.scores[t, o], strict=True)},
                )
            )
        return entries

    def verify(self, video_id: str | None = None, metadata_only: tuple[str, ...] = ()) -> VerifyReport:
        """Read every chunk of every array (of one video, or of the whole store) and report what
        is damaged; arrays in ``metadata_only`` are checked for their metadata only (the caller
        reads their chunks, checksummed, itself); see :func:`usam_video.store.verify.verify_store`.

        Raises:
            VideoNotFoundError: ``video_id`` is neither a video nor a history of the store.
        """

        def nodes(path: str) -> list[str]:
            # One video's check looks for it alone: listing every video (and checking each one's
            # metadata) made each skipped video of a run cost a request per video of the store.
            if video_id is not None and path in ("videos", "history"):
                return self._node_names(path, only=[video_id])
            return self._node_names(path)

        if video_id is not None and not (nodes("videos") or nodes("history")):
            self._group(video_id)  # raises VideoNotFoundError naming the videos present
        return verify_store(self._root, self.location, nodes, video_id, metadata_only)

    def require_intact(self, video_id: str) -> None:
        """Read every chunk of a video (see :meth:`verify`) before it is skipped as complete or
        written into, so that damage is reported instead of hidden or built upon.

        Raises:
            DamagedVideoError: naming the video, its first damaged arrays and chunks, the remedy.
        """
        report = self.verify(video_id)
        if report.intact:
            return
        problems = report.problems
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise DamagedVideoError(
            f"{self.location}: video {video_id!r}: expected intact data, got damage: "
            f"{'; '.join(problems[:3])}{more}. Nothing was written into it. Run 'usam-video verify "
            f"{self.location}' for the full list; restore the store from a copy, or delete "
            f"videos/{video_id} and rerun to relabel it."
        )

    def record_failure(self, video_id: str, message: str) -> None:
        """Keep why labelling failed in an *incomplete* video's attributes (``inspect`` shows it).

        A complete video, or one without a group, is left untouched: a failure before the first
        write changed nothing, and the store stays byte-identical. Best effort: a store too
        damaged to take the note is left as it is (the caller is already reporting a failure).
        """
        try:
            group = self._group_or_none(video_id)
            if group is not None and not group.attrs.get("complete", False):
                with _writing(self.location):  # a full disk may refuse the note too
                    group.attrs["failure"] = message[:_FAILURE_CHARS]
                    self._touch(video_id)
        except StoreError:
            return

    # --- claims: one writer per video ---------------------------------------------------------
    @_writes
    def claim(self, video_id: str, owner: str | None = None, lease_s: float = LEASE_S) -> str | None:
        """Claim a video for writing; returns None on success, else the live owner's name.

        See :func:`usam_video.store.claims.claim_video`: one writer per video across processes
        and hosts (local and shared folders, S3 with conditional writes; ``memory://`` within
        this process), a lease of ``lease_s`` that :meth:`keep_claim` renews, an expired claim
        taken over by compare-and-swap.
        """
        return claim_video(self.location, video_id, owner, lease_s, self.storage_options)

    def keep_claim(self, video_id: str, owner: str | None = None, lease_s: float = LEASE_S) -> ClaimRenewal:
        """A context manager renewing this owner's claim of ``video_id`` while it writes (see
        :class:`usam_video.store.claims.ClaimRenewal`); make it on the claiming thread, whose
        owner name it takes by default."""
        return ClaimRenewal(self.location, video_id, owner, lease_s, self.storage_options)

    @_writes
    def release(self, video_id: str, owner: str | None = None) -> None:
        """Release a claim this owner holds (no-op otherwise)."""
        release_video(self.location, video_id, owner, self.storage_options)

    def claims(self) -> list[Claim]:
        """Every claim in the store (``live`` tells an expired one), by video id; reads only."""
        return list_claims(self.location, self.storage_options)

    @_writes
    def clean_claims(self) -> list[str]:
        """Remove expired claims (a run's first claim does it too); the video ids freed."""
        return clean_claims(self.location, self.storage_options)

    # --- writing -------------------------------------------------------------------------
    @_writes
    def begin_video(
        self,
        video: VideoRef,
        object_ids: Sequence[int],
        score_names: Sequence[str],
        reasons: Sequence[str],
        provenance: dict[str, Any],
        fingerprint: str,
        candidate_score_names: Sequence[str] = (),
        num_candidates: int = 0,
    ) -> VideoWriter:
        """(Re)create a video's group, marked incomplete, and return its writer.

        An existing group of the same video is replaced: callers skip complete videos first.
        Redoing a video whose previous write never completed (a killed run, a retried task) reuses
        that write's generation: no export can hold an incomplete video's revisions, and a
        resumed run then ends with the same ``revision`` array as an uninterrupted one.
        """
        if not _VIDEO_ID.match(video.video_id):
            raise InputError(
                f"video id {video.video_id!r}: expected letters, digits, '.', '_', '+' or '-' "
                "(it names a folder in the store)."
            )
        if len(reasons) > 254:
            raise InputError(f"policy: expected at most 254 rules, got {len(reasons)}.")
        videos = self._videos_group()
        stop_writer(self.location, video.video_id)  # an earlier writer of it must not write on
        # The earlier group is read once, for its generation and its corrections (damaged
        # metadata raises here: its corrections cannot be carried over).
        earlier = self._group_or_none(video.video_id)
        with _writing(self.location):  # being rewritten: readers read its group, not the index
            sync(forget(self._root.store, self._root.store_path.path, video.video_id))
        generation = self._labelling_generation(None if earlier is None else dict(earlier.attrs))
        # Corrections are snapshotted first: if this relabelling dies, the next run finds them.
        self._carry_corrections(video.video_id, earlier, video.height, video.width)
        # The attributes go with the group, in one write of its metadata (setting them one by
        # one rewrites it per key).
        attributes = {
            "complete": False,
            "video": {
                "dataset": video.dataset,
                "num_frames": video.num_frames,
                "height": video.height,
                "width": video.width,
                "fps": video.fps,
            },
            "object_ids": [int(i) for i in object_ids],
            "score_names": list(score_names),
            "reasons": list(reasons),
            "provenance": provenance,
            "fingerprint": fingerprint,
            "candidate_score_names": list(candidate_score_names),
            "generation": generation,
        }
        specs = _video_array_specs(
            video.num_frames, len(object_ids), len(score_names), video.height, video.width,
            len(candidate_score_names) if num_candidates else 0, num_candidates,
        )  # fmt: skip
        group, arrays = create_video_nodes(videos, video.video_id, attributes, specs)
        # The writer takes the arrays just made: opening them again would read each one's
        # metadata back (this runs on a thread beside SAM 2's, whose lock it shares).
        o, s = len(object_ids), len(score_names)
        return VideoWriter(
            group, o, s, generation, location=self.location, arrays=arrays,
            on_finish=functools.partial(self._finished, video.video_id, group),
        )  # fmt: skip

    def _video_attrs(self, video_id: str) -> dict[str, Any] | None:
        """A video group's attributes; None if it has no group (or no ``zarr.json`` yet).

        Raises:
            StoreError: the group's metadata is damaged.
        """
        group = self._group_or_none(video_id)
        return None if group is None else dict(group.attrs)

    @staticmethod
    def _recorded_generation(attrs: Mapping[str, Any] | None) -> int:
        """The ``generation`` a video group recorded (0: none, or written before groups did)."""
        value = (attrs or {}).get("generation")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def _labelling_generation(self, attrs: Mapping[str, Any] | None) -> int:
        """The generation a (re)labelling writes under, from the attributes of the video's
        earlier group (None: none, or damaged): that of an incomplete group recording it (an
        interrupted write is redone under its own generation), else the next one
        (:meth:`_next_generation`)."""
        recorded = self._recorded_generation(attrs)
        if attrs is not None and not attrs.get("complete") and recorded:
            return recorded
        return max(self._legacy_generation(), recorded) + 1

    def _next_generation(self, video_ids: Sequence[str]) -> int:
        """The generation of a new write into ``video_ids``: one past the highest each recorded
        and past the legacy root counter, so it exceeds every revision they hold. Read from the
        videos' own groups, written nowhere here: concurrent writers of other videos never
        contend for it. A damaged group counts as none (its video is rewritten whole)."""
        highest = self._legacy_generation()
        for video_id in video_ids:
            try:
                highest = max(highest, self._recorded_generation(self._video_attrs(video_id)))
            except StoreError:
                continue
        return highest + 1

    # --- refinements and corrections ------------------------------------------------------
    def validate_updates(self, updates: Sequence[MaskUpdate]) -> list[str]:
        """Every problem of a batch of mask updates, one message each (empty when all is well)."""
        problems = []
        videos = self.videos()
        summaries: dict[str, VideoSummary] = {}  # read once per video, not once per update
        for i, u in enumerate(updates):
            where = f"update {i} (video {u.video_id!r} frame {u.frame_index} object {u.object_id})"
            if u.video_id not in videos:
                problems.append(f"{where}: expected a video of the store {videos}, got {u.video_id!r}.")
                continue
            if u.video_id not in summaries:
                summaries[u.video_id] = self.summary(u.video_id)
            summary = summaries[u.video_id]
            if not summary.complete:
                problems.append(
                    f"{where}: expected a complete video, the video was interrupted; rerun it first."
                )
            if not 0 <= u.frame_index < summary.num_frames:
                problems.append(f"{where}: expected a frame in 0..{summary.num_frames - 1}.")
            if u.object_id not in summary.object_ids:
                problems.append(f"{where}: expected an object in {list(summary.object_ids)}.")
            if u.mask.shape != (summary.height, summary.width) or u.mask.dtype != bool:
                problems.append(
                    f"{where}: expected a bool mask of {summary.height}x{summary.width}, "
                    f"got {u.mask.dtype} {u.mask.shape}."
                )
            if u.scores is not None and u.scores.shape != (len(summary.score_names),):
                problems.append(f"{where}: expected {len(summary.score_names)} scores, got {u.scores.shape}.")
        keys = Counter((u.video_id, u.frame_index, u.object_id) for u in updates)
        duplicates = sorted(k for k, n in keys.items() if n > 1)
        if duplicates:
            problems.append(f"expected one update per frame-object, got several for {duplicates}.")
        return problems

    def _batch_entry(self, batch_id: str) -> dict[str, Any] | None:
        """A batch's record: its group ``batches/<batch_id>``, else the root's ``batches``
        attribute, where stores written before kept every record."""
        if _VIDEO_ID.match(batch_id):
            with self._reading(None, f"group metadata batches/{batch_id}/zarr.json"):
                try:
                    return dict(self._root[f"batches/{batch_id}"].attrs)
                except KeyError:
                    pass
        entry = (self._root.attrs.get("batches") or {}).get(batch_id)
        return entry if isinstance(entry, dict) else None

    def _record_batch(self, batch_id: str, entry: Mapping[str, Any]) -> None:
        """Write a batch's record into its own group (one metadata document, replaced whole), so
        that concurrent imports never rewrite one shared document."""
        path = f"batches/{batch_id}"
        try:
            group = self._root[path]
        except KeyError:
            self._root.create_group(path, attributes=dict(entry))
            return
        group.attrs.update(dict(entry))

    def batch(self, batch_id: str) -> WriteBatch | None:
        """The record of the named batch of :meth:`replace_masks`, or None if never begun."""
        entry = self._batch_entry(batch_id)
        if entry is None:
            return None
        history = {}
        for vid, (start, end) in (entry.get("history") or {}).items():
            # An incomplete batch's rows run to the end of the history written so far.
            end = end if entry.get("complete") else self._history_rows(vid)
            history[str(vid)] = (int(start), int(end))
        complete = bool(entry.get("complete"))
        return WriteBatch(batch_id, int(entry["generation"]), complete, history, str(entry.get("key", "")))

    def batches(self, key: str | None = None) -> list[WriteBatch]:
        """Every recorded batch of :meth:`replace_masks` (only those of ``key`` if given), oldest
        generation first."""
        ids = set(self._node_names("batches")) | {str(i) for i in self._root.attrs.get("batches") or {}}
        found = [self.batch(i) for i in sorted(ids)]
        return sorted(
            (b for b in found if b is not None and (key is None or b.key == key)), key=lambda b: b.generation
        )

    def _history_rows(self, video_id: str) -> int:
        if "history" not in self._root or video_id not in self._root["history"]:
            return 0
        return int(self._root[f"history/{video_id}/meta"].shape[0])

    def _raise_generations(self, video_ids: Sequence[str], generation: int) -> None:
        """Record ``generation`` in each video's attributes (where it is higher), before any mask
        is stamped with it: the next write of the video then takes a higher one."""
        for video_id in video_ids:
            group = self._group(video_id)
            if self._recorded_generation(dict(group.attrs)) < generation:
                group.attrs["generation"] = generation

    def _begin_batch(self, batch_id: str | None, updates: Sequence[MaskUpdate], key: str) -> WriteBatch:
        """Take the next generation of the videos ``updates`` touch, record it in them, then (a
        named batch) record the batch. In this order a kill between the two leaves the videos
        past the generation, so a rerun takes a higher one, never one another write used."""
        videos = sorted({u.video_id for u in updates})
        generation = self._next_generation(videos)
        self._raise_generations(videos, generation)
        starts = {vid: self._history_rows(vid) for vid in videos}
        if batch_id is not None:
            self._record_batch(
                batch_id,
                {
                    "generation": generation,
                    "complete": False,
                    "history": {vid: [n, n] for vid, n in starts.items()},
                    "key": key,
                },
            )
        return WriteBatch(batch_id or "", generation, False, {vid: (n, n) for vid, n in starts.items()}, key)

    def _extend_batch(self, batch: WriteBatch, updates: Sequence[MaskUpdate]) -> WriteBatch:
        """A resumed batch that now touches videos it did not: their history rows start here
        (recorded before any is written, so a second interruption still finds them).

        Raises:
            InputError: such a video has reached the batch's generation since (another write):
                its masks would go back to an older revision.
        """
        videos = sorted({u.video_id for u in updates} - set(batch.history))
        new = {vid: self._history_rows(vid) for vid in videos}
        if not new:
            # A batch begun before videos recorded generations (the root's counter) records it now.
            self._raise_generations(sorted({u.video_id for u in updates}), batch.generation)
            return batch
        for vid in videos:
            reached = self._recorded_generation(self._video_attrs(vid))
            if reached >= batch.generation:
                raise InputError(
                    f"{self.location}: batch {batch.batch_id}: expected video {vid!r} below the "
                    f"interrupted batch's generation {batch.generation}, got generation {reached} "
                    "(written since). Export again and import the new export."
                )
        self._raise_generations(videos, batch.generation)
        history = {**batch.history, **{vid: (n, n) for vid, n in new.items()}}
        entry = self._batch_entry(batch.batch_id) or {}
        self._record_batch(
            batch.batch_id,
            {
                **entry,
                "generation": batch.generation,
                "complete": False,
                "key": batch.key,
                "history": {vid: [start, end] for vid, (start, end) in history.items()},
            },
        )
        return WriteBatch(batch.batch_id, batch.generation, False, history, batch.key)

    def _finish_batch(self, batch: WriteBatch) -> None:
        history = {vid: [start, self._history_rows(vid)] for vid, (start, _) in batch.history.items()}
        self._record_batch(
            batch.batch_id,
            {"generation": batch.generation, "complete": True, "history": history, "key": batch.key},
        )

    def _in_batch_history(self, batch: WriteBatch, video_id: str, t: int, object_id: int) -> bool:
        """Whether the (resumed) batch already kept frame ``t`` object ``object_id``'s replaced mask."""
        start, end = batch.history.get(video_id, (0, 0))
        if end <= start:
            return False
        meta = self._root[f"history/{video_id}/meta"][start:end]
        return bool(((meta[:, 0] == t) & (meta[:, 1] == object_id)).any())

    @_writes
    def replace_masks(self, updates: Sequence[MaskUpdate], batch_id: str | None = None, key: str = "") -> int:
        """Replace frame-object masks, keeping each replaced mask in the video's history.

        The whole batch is validated before anything is written (a bad entry leaves the store
        unchanged). Returns the batch's generation (the new revision of every updated mask).

        A named batch (``batch_id``, e.g. an import's id) is recorded in the store with its
        generation and the history rows it wrote. Rerun after an interruption (a kill -9 mid-way)
        with the same id and the updates not yet done (or all of them), it resumes: same
        generation, and no frame-object's replaced mask is kept twice in the history, so the
        store ends as after an uninterrupted write. A complete batch is not written again.
        ``key`` is recorded with a new batch (see :class:`WriteBatch`); a resumed one keeps its own.

        Raises:
            InputError: listing every bad update, updates for a batch already complete, a
                ``batch_id`` that cannot name a group, or a resumed batch reaching a video
                written past its generation since.
        """
        if batch_id is not None and not _VIDEO_ID.match(batch_id):
            raise InputError(
                f"{self.location}: batch id {batch_id!r}: expected letters, digits, '.', '_', '+' or "
                "'-' (it names a group in the store)."
            )
        problems = self.validate_updates(updates)
        if problems:
            raise InputError(
                f"{self.location}: rejected {len(problems)} bad update(s):\n  " + "\n  ".join(problems)
            )
        batch = self.batch(batch_id) if batch_id is not None else None
        if batch is not None and batch.complete:
            if updates:
                raise InputError(
                    f"{self.location}: batch {batch_id}: expected no updates for a batch written in "
                    f"full (generation {batch.generation}), got {len(updates)}. Export again and "
                    "import the new export."
                )
            return batch.generation
        if not updates and batch is None:
            return self.generation
        if batch is None:
            batch = self._begin_batch(batch_id, updates, key)
        else:
            batch = self._extend_batch(batch, updates)
        generation = batch.generation
        for u in updates:
            group = self._group(u.video_id)
            o = list(group.attrs["object_ids"]).index(u.object_id)
            t = u.frame_index
            # Resumed: the interrupted run may have kept this mask already, and may even have
            # written the new one over it, which must not go to the history as "replaced".
            if not (batch_id is not None and self._in_batch_history(batch, u.video_id, t, u.object_id)):
                self._append_history(u.video_id, group, t, o, u.object_id)
            group["masks"][t, o] = u.mask
            if u.scores is not None:
                group["scores"][t, o] = u.scores.astype(np.float32)
            reasons = list(group.attrs["reasons"])
            if u.reason and u.reason not in reasons:
                reasons.append(u.reason)
                group.attrs["reasons"] = reasons
            group["reason"][t, o] = reasons.index(u.reason) + 1 if u.reason else 0
            group["source"][t, o] = int(u.source)
            group["revision"][t, o] = generation
            group["status"][t, o] = int(u.status)
        for video_id in dict.fromkeys(u.video_id for u in updates):
            self._touch(video_id)
        if batch_id is not None:
            self._finish_batch(batch)
        return generation

    @_writes
    def set_decisions(
        self, video_id: str, entries: Sequence[tuple[int, int]], status: Status, reason: str
    ) -> None:
        """Set status and reason of ``(frame, object_id)`` entries whose masks stay as they are
        (no new revision: the mask an export holds is still current)."""
        group = self._group(video_id)
        ids = list(group.attrs["object_ids"])
        reasons = list(group.attrs["reasons"])
        if reason and reason not in reasons:
            reasons.append(reason)
            group.attrs["reasons"] = reasons
        code = reasons.index(reason) + 1 if reason else 0
        for t, obj in entries:
            o = ids.index(obj)
            group["reason"][t, o] = code
            group["status"][t, o] = int(status)
        if entries:
            self._touch(video_id)

    def review_plan(self, video_id: str) -> dict[tuple[int, int], dict[str, Any]]:
        """The review planner's picks of a video: ``{(frame, object_id): {"rank", "reason",
        "round", ...}}`` (rank 1 = picked first; round 1 = the first pass; empty for videos
        labelled without a human budget)."""
        group = self._group(video_id)
        entries = self._attrs(video_id, group).get("review_plan") or []
        # Plans stored before review rounds were recorded were all made by the first pass.
        return {(int(e["frame"]), int(e["object"])): {"round": 1, **e} for e in entries}

    @_writes
    def set_review_plan(self, video_id: str, entries: Sequence[Mapping[str, Any]]) -> None:
        """Replace a video's review plan (``frame``, ``object``, ``rank``, ``reason`` per pick),
        e.g. when the run budget re-plans across videos."""
        self._group(video_id).attrs["review_plan"] = [dict(e) for e in entries]

    def _history_group(self, video_id: str, height: int, width: int) -> zarr.Group:
        history = _require_group(self._root, "history")
        if video_id not in history:
            g = history.create_group(video_id)
            crc = checksummed_codecs()
            g.create_array("masks", shape=(0, height, width), chunks=(1, height, width), dtype="bool", **crc)
            g.create_array("meta", shape=(0, 5), chunks=(4096, 5), dtype="int64", **crc)
        return history[video_id]

    def _append_history(self, video_id: str, group: zarr.Group, t: int, o: int, object_id: int) -> None:
        h, w = group["masks"].shape[2:]
        hist = self._history_group(video_id, h, w)
        n = hist["masks"].shape[0]
        hist["masks"].resize((n + 1, h, w))
        hist["masks"][n] = group["masks"][t, o]
        meta = [
            t,
            object_id,
            int(group["revision"][t, o]),
            int(group["source"][t, o]),
            int(group["status"][t, o]),
        ]
        hist["meta"].resize((n + 1, 5))
        hist["meta"][n] = np.array(meta, np.int64)

    def history(self, video_id: str) -> list[HistoryEntry]:
        """Every replaced mask of a video, oldest first."""
        with self._reading(video_id, f"array 'history/{video_id}/meta'"):
            if "history" not in self._root or video_id not in self._root["history"]:
                return []
            meta = self._root[f"history/{video_id}/meta"][:]
        return [
            HistoryEntry(i, int(m[0]), int(m[1]), int(m[2]), MaskSource(int(m[3])), Status(int(m[4])))
            for i, m in enumerate(meta)
        ]

    def history_mask(self, video_id: str, index: int) -> np.ndarray:
        """``bool`` ``(H, W)``: the mask of history entry ``index``."""
        with self._reading(video_id, f"array 'history/{video_id}/masks'"):
            return self._root[f"history/{video_id}/masks"][index]

    def corrections(self, video_id: str) -> list[MaskUpdate]:
        """The human-corrected frame-objects of a video, with their current masks.

        For a video whose relabelling was interrupted (incomplete group), the corrections
        carried over when that relabelling began are returned, so a crash never loses them.
        """
        return self._corrections_in(video_id, self._group_or_none(video_id))

    def _corrections_in(self, video_id: str, group: zarr.Group | None) -> list[MaskUpdate]:
        """:meth:`corrections` of a video whose group (None: absent) is already open."""
        if group is None or not group.attrs.get("complete"):
            return self._carried(video_id)
        status = self._read(video_id, group, "status")
        ids = list(self._attrs(video_id, group)["object_ids"])
        out = []
        for t, o in zip(*np.nonzero(status == Status.CORRECTED), strict=True):
            mask = self._read(video_id, group, "masks", (int(t), int(o)))
            out.append(MaskUpdate(video_id, int(t), int(ids[o]), mask, MaskSource.HUMAN, Status.CORRECTED))
        return out

    def _carried(self, video_id: str) -> list[MaskUpdate]:
        with self._reading(video_id, f"the carried corrections in history/{video_id}"):
            if "history" not in self._root or video_id not in self._root["history"]:
                return []
            hist = self._root[f"history/{video_id}"]
            if "carried_meta" not in hist:
                return []
            meta = hist["carried_meta"][:]
            return [
                MaskUpdate(
                    video_id, int(t), int(obj), hist["carried_masks"][i], MaskSource.HUMAN, Status.CORRECTED
                )
                for i, (t, obj) in enumerate(meta)
            ]

    def _carry_corrections(self, video_id: str, group: zarr.Group | None, height: int, width: int) -> None:
        """Snapshot a video's corrections beside its history before its group (None: absent) is
        replaced."""
        corrections = self._corrections_in(video_id, group)
        if not corrections and ("history" not in self._root or video_id not in self._root["history"]):
            return
        hist = self._history_group(video_id, height, width)
        n = len(corrections)
        crc = checksummed_codecs()
        masks = hist.create_array(
            "carried_masks",
            shape=(n, height, width),
            chunks=(1, height, width),
            dtype="bool",
            overwrite=True,
            **crc,
        )
        meta = hist.create_array(
            "carried_meta", shape=(n, 2), chunks=(max(n, 1), 2), dtype="int64", overwrite=True, **crc
        )
        for i, c in enumerate(corrections):
            masks[i] = c.mask
        if n:
            meta[:] = np.array([[c.frame_index, c.object_id] for c in corrections], np.int64)
