"""The store's summary index: ``inspect`` and ``queue`` of a store of 50,000 videos on S3 read a
few objects instead of three per video.

Two parts, under the store's root:

* ``index/<video_id>``: a *change marker* per video, rewritten by every write that changes what
  :class:`~usam_video.store.records.VideoSummary` shows of it (a labelling's end, a failure,
  corrections, decisions) and removed when a labelling starts. Its content is the digest of the
  summary (:func:`marker_of`), so its version (the object store's ETag; the content itself
  elsewhere) changes with the summary. One listing request returns a thousand markers with
  their versions.
* ``index.json``: the *consolidated* summaries, each with the marker version it was read under
  (and the provenances, which a run's videos share, once each by digest). Written by
  :meth:`~usam_video.store.PseudoLabelStore.consolidate_index` at the end of a labelling run.

A reader lists the markers, reads ``index.json`` and trusts an entry only while its marker is
unchanged: a video written since (or never consolidated, or without a marker: a store written
before the index, or being written) is read from its own group, as before. The index is a cache: deleting
``index/`` and ``index.json`` loses nothing. Marker versions are taken before the summaries
they vouch for, so a write racing a consolidation leaves its entry stale, never wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import FsspecStore, LocalStore

from usam_video.store.chunks import write_file_atomic
from usam_video.store.records import VideoSummary

__all__ = [
    "CONSOLIDATED",
    "MARKERS",
    "Consolidated",
    "forget",
    "marker_of",
    "marker_versions",
    "read_consolidated",
    "touch",
    "write_consolidated",
]

MARKERS = "index"
CONSOLIDATED = "index.json"
_FORMAT = "usam-video-index"
_VERSION = 1


def _key(root_path: str, *parts: str) -> str:
    return "/".join(p for p in (root_path, *parts) if p)


def marker_of(summary: VideoSummary) -> bytes:
    """A marker's content: the digest of the summary it vouches for. Every change to what the
    summary shows changes it (and the object's ETag); equal states give equal bytes, so two
    runs that end in the same store end with the same files (an import resumed after a kill
    included)."""
    text = json.dumps(asdict(summary), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest().encode()


async def touch(store: Store, root_path: str, video_id: str, content: bytes) -> None:
    """Write ``video_id``'s change marker (one small write)."""
    await store.set(_key(root_path, MARKERS, video_id), default_buffer_prototype().buffer.from_bytes(content))


async def forget(store: Store, root_path: str, video_id: str) -> None:
    """Remove ``video_id``'s change marker, if any (a video being rewritten has none: readers
    read its group). One request: zarr's ``delete`` on fsspec also lists before removing."""
    key = _key(root_path, MARKERS, video_id)
    if isinstance(store, FsspecStore):
        with contextlib.suppress(FileNotFoundError):
            await store.fs._rm_file(f"{store.path}/{key}")
    else:
        await store.delete(key)


async def marker_versions(store: Store, root_path: str) -> dict[str, str]:
    """``{video_id: version}`` of every change marker: the listing's ETag on an object store
    (a request per thousand markers), else the marker's token (a local or in-memory store)."""
    prefix = _key(root_path, MARKERS)
    if isinstance(store, FsspecStore):
        try:
            listed = await store.fs._ls(f"{store.path}/{prefix}".strip("/"), detail=True)
        except FileNotFoundError:
            return {}
        files = [e for e in listed if e.get("type") != "directory"]
        tagged = {str(e["name"]).rsplit("/", 1)[-1]: e.get("ETag") for e in files}
        if all(tagged.values()):
            return {name: str(tag) for name, tag in tagged.items()}
        names = list(tagged)
    elif isinstance(store, LocalStore):
        folder = Path(store.root) / prefix
        names = sorted(os.listdir(folder)) if folder.is_dir() else []
    else:
        names = [n async for n in store.list_dir(prefix)]
    tokens = await asyncio.gather(*(store.get(_key(prefix, n), default_buffer_prototype()) for n in names))
    return {n: t.to_bytes().decode() for n, t in zip(names, tokens, strict=True) if t is not None}


class Consolidated:
    """The consolidated summaries: ``entries`` ``{video_id: (marker version, summary)}``."""

    def __init__(self, entries: Mapping[str, tuple[str, VideoSummary]]):
        self.entries = dict(entries)

    def fresh(self, video_id: str, version: str | None) -> VideoSummary | None:
        """The entry's summary while the video's marker is still at the version it was read
        under; None otherwise (no marker, no entry, or written since)."""
        found = self.entries.get(video_id)
        return found[1] if found is not None and version is not None and found[0] == version else None


def _document(entries: Mapping[str, tuple[str, VideoSummary]]) -> bytes:
    provenances: dict[str, dict[str, Any]] = {}
    videos = {}
    for video_id, (version, summary) in sorted(entries.items()):
        fields = asdict(summary)
        provenance = fields.pop("provenance")
        digest = hashlib.sha256(json.dumps(provenance, sort_keys=True).encode()).hexdigest()[:16]
        provenances[digest] = provenance
        videos[video_id] = {"marker": version, "provenance": digest, **fields}
    return json.dumps(
        {"format": _FORMAT, "version": _VERSION, "provenances": provenances, "videos": videos},
        separators=(",", ":"),
    ).encode()


def _parse(raw: bytes) -> Consolidated | None:
    try:
        doc = json.loads(raw)
        if doc.get("format") != _FORMAT or doc.get("version") != _VERSION:
            return None
        provenances = doc["provenances"]
        entries = {}
        for video_id, item in doc["videos"].items():
            item = dict(item)
            version = str(item.pop("marker"))
            item["provenance"] = provenances[item["provenance"]]
            item["object_ids"] = tuple(item["object_ids"])
            item["score_names"] = tuple(item["score_names"])
            entries[video_id] = (version, VideoSummary(**item))
        return Consolidated(entries)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a damaged or foreign index is no index: every video is read


async def read_consolidated(store: Store, root_path: str) -> Consolidated | None:
    """``index.json``, or None when absent or unreadable (a cache: never an error)."""
    raw = await store.get(_key(root_path, CONSOLIDATED), default_buffer_prototype())
    return None if raw is None else _parse(raw.to_bytes())


async def write_consolidated(
    store: Store, root_path: str, entries: Mapping[str, tuple[str, VideoSummary]]
) -> None:
    """Replace ``index.json`` whole (a rename on a local store; one PUT on an object store)."""
    document = _document(entries)
    if isinstance(store, LocalStore):
        write_file_atomic(Path(store.root) / _key(root_path, CONSOLIDATED), document)
    else:
        await store.set(_key(root_path, CONSOLIDATED), default_buffer_prototype().buffer.from_bytes(document))
