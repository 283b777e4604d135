"""``manifest.json``: what an export holds, written beside its annotations.

It ties the annotator's files back to the store: every exported frame (with its image and, for
CVAT, its frame number in the per-video task) and every exported frame-object with the store
``revision`` it had at export time. An import refuses a frame-object whose revision moved since
(someone corrected or relabelled it after the export).

Each entry says whether the frame-object was ``queued`` (its status was one of ``statuses``:
the reviewer was asked to look at it) or only shown because another object of its frame was,
and carries ``mask_sha256`` (:func:`mask_digest`) of the mask exported: the import tells an
edited mask from an unchanged one by it, whatever the store holds by then (an interrupted import
may have written part of the batch). ``files`` maps every file the export wrote (relative path)
to its sha256: the import refuses an export whose view-only files (``palette/``, ``images/``)
were edited, because it would not read those edits. Manifests written before these fields read
``queued`` from ``status`` and skip the two checks. ``round`` is the review round of a queued
entry that is one of the review planner's picks (1: the first pass; one more per import that
brought its video corrections), null for every other entry and in older manifests.

``store_id`` is the exporting store's UUID: an import refuses an export of another store.
Exports written before store ids (no ``store_id``) are accepted only by the store at the path
their ``store`` names; stores made before ids export ``store_id: ""`` and are matched the same way.

Layout::

    {"format": "usam-video-review-export", "format_version": 1,
     "store": "/abs/store.zarr", "store_id": "<uuid of the store>",
     "annotation_format": "cvat" | "coco" | "png",
     "created_at": "...", "statuses": ["queued_human", ...],
     "videos": {"<video>": {"height": H, "width": W, "num_frames": T, "object_ids": [...],
                            "annotations": "annotations/<video>.xml" | "annotations.json" | "masks/<video>"}},
     "frames": [{"video_id", "frame", "task_frame", "image": "images/<video>/<frame:05d>.jpg"}],
     "entries": [{"video_id", "frame", "object_id", "revision", "status", "source", "reason",
                  "queued": bool, "mask_sha256": "<hex>", "round": int | null}],
     "files": {"<relative path>": "<sha256>", ...}}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.errors import InputError
from usam_video.hashing import file_sha256

__all__ = [
    "AUDIT_FILE",
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "EXPORT_FORMATS",
    "ManifestVideo",
    "ManifestFrame",
    "ManifestEntry",
    "Manifest",
    "mask_digest",
    "export_files",
    "changed_files",
    "read_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
#: Beside the manifest of an audit export (``usam-video audit``): the sample and how it was drawn.
#: Its truth goes to ``release --audit``; ``import`` refuses it (an audit never relabels the store).
AUDIT_FILE = "audit.json"
MANIFEST_FORMAT = "usam-video-review-export"
MANIFEST_FORMAT_VERSION = 1
#: The annotation formats an export can be written in (and an import read back).
EXPORT_FORMATS: tuple[str, ...] = ("cvat", "coco", "png")


def mask_digest(mask: np.ndarray) -> str:
    """Hex sha256 of a ``bool`` ``(H, W)`` mask: its shape and its bits packed row by row (the
    same for a mask read back from any format, so export and import compare masks by it)."""
    mask = np.asarray(mask, dtype=bool)
    digest = hashlib.sha256(np.asarray(mask.shape, np.int64).tobytes())
    digest.update(np.packbits(mask, axis=None).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ManifestVideo:
    """Geometry and objects of one exported video; ``annotations`` is relative to the export."""

    height: int
    width: int
    num_frames: int
    object_ids: tuple[int, ...]
    annotations: str


@dataclass(frozen=True)
class ManifestFrame:
    """One exported frame: ``task_frame`` is its 0-based number in the video's CVAT task (the
    exported frames of the video in ascending order); ``image`` is relative to the export."""

    video_id: str
    frame: int
    task_frame: int
    image: str


@dataclass(frozen=True)
class ManifestEntry:
    """One exported frame-object and its state in the store at export time.

    Attributes:
        queued: the reviewer was asked to look at it (its status was queued); False for an object
            exported only because another object of its frame was queued.
        mask_sha256: :func:`mask_digest` of the exported mask ("" in older manifests).
        round: the review round of the planner's pick the reviewer is asked about (the plan
            entry's ``round``, 1 for plans written before rounds); None for an entry that is no
            pick (context, queued without a plan or for refinement) and in older manifests.
    """

    video_id: str
    frame: int
    object_id: int
    revision: int
    status: str
    source: str
    reason: str = ""
    queued: bool = True
    mask_sha256: str = ""
    round: int | None = None


@dataclass(frozen=True)
class Manifest:
    """A whole ``manifest.json`` (see the module docstring)."""

    store: str
    annotation_format: str
    created_at: str
    statuses: tuple[str, ...]
    videos: Mapping[str, ManifestVideo]
    frames: tuple[ManifestFrame, ...]
    entries: tuple[ManifestEntry, ...]
    store_id: str = ""  # "" for exports (or stores) made before store ids
    #: Relative path -> sha256 of every file the export wrote (empty in older manifests).
    files: Mapping[str, str] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    def entry(self, video_id: str, frame: int, object_id: int) -> ManifestEntry | None:
        """The export-time state of one frame-object, or None if it was not exported."""
        return self._entries.get((video_id, frame, object_id))

    def frame_of_task(self, video_id: str, task_frame: int) -> ManifestFrame | None:
        """The exported frame with CVAT task frame ``task_frame`` of a video, or None."""
        return self._task_frames.get((video_id, task_frame))

    @cached_property
    def _entries(self) -> dict[tuple[str, int, int], ManifestEntry]:
        return {(e.video_id, e.frame, e.object_id): e for e in self.entries}

    @cached_property
    def _task_frames(self) -> dict[tuple[str, int], ManifestFrame]:
        return {(f.video_id, f.task_frame): f for f in self.frames}

    @cached_property
    def _frames(self) -> set[tuple[str, int]]:
        return {(f.video_id, f.frame) for f in self.frames}

    def as_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_FORMAT_VERSION,
            "store": self.store,
            "store_id": self.store_id,
            "annotation_format": self.annotation_format,
            "created_at": self.created_at,
            "statuses": list(self.statuses),
            "videos": {
                v: {**asdict(m), "object_ids": list(m.object_ids)} for v, m in sorted(self.videos.items())
            },
            "frames": [asdict(f) for f in self.frames],
            "entries": [asdict(e) for e in self.entries],
            "files": dict(sorted(self.files.items())),
        }


def export_files(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under an export folder but its manifest."""
    return {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST_NAME
    }


def changed_files(folder: Path, manifest: Manifest, under: tuple[str, ...] = ()) -> list[str]:
    """The files of an export folder edited or added since the export, relative to it, sorted.

    Only files under the top-level folders ``under`` count (all when empty). A deleted file is
    not a change: nothing was drawn in it. Empty for manifests written before ``files``.
    """
    if not manifest.files:
        return []
    changed = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or rel == MANIFEST_NAME or (under and rel.split("/", 1)[0] not in under):
            continue
        if manifest.files.get(rel) != file_sha256(path):
            changed.append(rel)
    return changed


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``<folder>/manifest.json``; returns its path."""
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(manifest.as_json(), indent=1) + "\n")
    return path


def read_manifest(path: Path) -> Manifest:
    """Read and check a ``manifest.json``.

    Raises:
        InputError: missing, not JSON, or not a usam-video review manifest.
    """
    if not path.is_file():
        raise InputError(
            f"{path}: expected the export's {MANIFEST_NAME} beside the annotations, found nothing. "
            "Import files from a folder written by 'usam-video export'."
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: expected a JSON manifest, got: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{path}: expected a manifest with format={MANIFEST_FORMAT!r}.")
    try:
        videos = {
            str(v): ManifestVideo(
                int(m["height"]),
                int(m["width"]),
                int(m["num_frames"]),
                tuple(int(i) for i in m["object_ids"]),
                str(m["annotations"]),
            )
            for v, m in data["videos"].items()
        }
        frames = tuple(
            ManifestFrame(str(f["video_id"]), int(f["frame"]), int(f["task_frame"]), str(f["image"]))
            for f in data["frames"]
        )
        entries = tuple(
            ManifestEntry(
                str(e["video_id"]),
                int(e["frame"]),
                int(e["object_id"]),
                int(e["revision"]),
                str(e["status"]),
                str(e["source"]),
                str(e.get("reason", "")),
                # Older manifests: the reviewer was asked about the entries with a queued status.
                bool(e.get("queued", str(e["status"]) in data.get("statuses", ()))),
                str(e.get("mask_sha256", "")),
                None if e.get("round") is None else int(e["round"]),
            )
            for e in data["entries"]
        )
        files = {str(k): str(v) for k, v in (data.get("files") or {}).items()}
        fmt = str(data["annotation_format"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(
            f"{path}: expected a complete review manifest, got a malformed one ({exc!r})."
        ) from exc
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"{path}: expected annotation_format in {list(EXPORT_FORMATS)}, got {fmt!r}.")
    return Manifest(
        store=str(data.get("store", "")),
        store_id=str(data.get("store_id") or ""),
        annotation_format=fmt,
        created_at=str(data.get("created_at", "")),
        statuses=tuple(str(s) for s in data.get("statuses", ())),
        videos=videos,
        frames=frames,
        entries=entries,
        files=files,
        path=path,
    )
