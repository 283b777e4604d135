"""Read corrected masks back and check every one of them before anything is written.

:func:`plan_import` turns an annotator's files into ``MaskUpdate`` records (``HUMAN``,
``CORRECTED``) and collects *every* problem into one :class:`~usam_video.errors.InputError`:
undecodable RLE, wrong size, unknown video/frame/object, a file in the wrong format, and a
frame-object whose store ``revision`` moved since the export (someone corrected or relabelled it:
export again). It only reads the store; the caller writes the plan with
``PseudoLabelStore.replace_masks`` and then re-propagates the touched videos.

Idempotency: an entry whose mask equals the stored mask and whose frame-object is already
``corrected`` is skipped before the revision check, as is an empty mask for an object not yet
started on its frame; so running the same import twice changes nothing the second time.

Every frame-object present in the files is imported, edited or not: the annotator reviewed the
exported frames as a whole, so an unchanged mask is a confirmed one. Frame-objects left out of
the files (a partial review) are not touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usam_video.errors import InputError
from usam_video.review.coco import COCO_FILE, read_coco_file
from usam_video.review.cvat import read_cvat_file
from usam_video.review.manifest import MANIFEST_NAME, Manifest, read_manifest
from usam_video.review.png import MASKS_DIR, read_png_folder
from usam_video.review.records import ParsedMask
from usam_video.store import FrameTable, PseudoLabelStore, VideoSummary
from usam_video.types import MaskSource, MaskUpdate, Status, VideoResult

__all__ = [
    "ImportSource",
    "ImportPlan",
    "ImportResult",
    "locate_import",
    "read_import",
    "plan_import",
    "store_mismatch",
]


@dataclass(frozen=True)
class ImportSource:
    """Where an import's annotations are: the format, the files (or the masks folder) to read
    and the export's manifest."""

    format: str
    paths: tuple[Path, ...]
    manifest: Manifest


@dataclass(frozen=True, eq=False)
class ImportPlan:
    """A fully validated import, ready to write.

    Attributes:
        updates: one ``MaskUpdate`` (``HUMAN``, ``CORRECTED``, mask ``bool`` ``(H, W)``) per
            frame-object that changes.
        skipped: ``(video, frame, object)`` of entries that would change nothing.
    """

    source: ImportSource
    updates: tuple[MaskUpdate, ...]
    skipped: tuple[tuple[str, int, int], ...]

    @property
    def videos(self) -> tuple[str, ...]:
        """The videos the updates touch, sorted."""
        return tuple(sorted({u.video_id for u in self.updates}))

    def counts(self) -> dict[str, int]:
        """Updates per video."""
        out: dict[str, int] = {}
        for u in self.updates:
            out[u.video_id] = out.get(u.video_id, 0) + 1
        return out


@dataclass(frozen=True)
class ImportResult:
    """What an import did.

    Attributes:
        corrected: frame-objects written as corrections, per video.
        skipped: entries that changed nothing (already imported, or empty masks of objects not
            yet started).
        relabelled: the re-propagation of every touched video (empty with ``relabel=False`` or
            when nothing changed).
        generation: the store generation of the written corrections, or None if nothing was written.
    """

    path: Path
    format: str
    corrected: Mapping[str, int]
    skipped: int
    relabelled: tuple[VideoResult, ...] = field(default_factory=tuple)
    generation: int | None = None

    @property
    def total_corrected(self) -> int:
        return sum(self.corrected.values())


def _manifest_near(path: Path) -> Path:
    for folder in (path.parent, path.parent.parent):
        if (folder / MANIFEST_NAME).is_file():
            return folder / MANIFEST_NAME
    return path.parent / MANIFEST_NAME


def locate_import(path: str | Path) -> ImportSource:
    """Detect an import's format from its path.

    Accepted: an export folder (format from its manifest), a CVAT ``.xml`` file, a COCO
    ``.json`` file, a ``masks/`` folder of PNGs, or the ``manifest.json`` itself; the manifest
    is looked for beside the file (or one folder up).

    Raises:
        InputError: nothing at ``path``, an unrecognised file type, or no readable manifest.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: expected an export folder or annotation file to import, found nothing.")
    if path.is_file() and path.name == MANIFEST_NAME:
        path = path.parent
    if path.is_dir():
        if path.name == MASKS_DIR and not (path / MANIFEST_NAME).exists():
            manifest = read_manifest(path.parent / MANIFEST_NAME)
            return ImportSource("png", (path,), manifest)
        manifest = read_manifest(path / MANIFEST_NAME)
        fmt = manifest.annotation_format
        if fmt == "cvat":
            files = sorted({path / v.annotations for v in manifest.videos.values()})
            return ImportSource("cvat", tuple(files), manifest)
        if fmt == "coco":
            return ImportSource("coco", (path / COCO_FILE,), manifest)
        return ImportSource("png", (path / MASKS_DIR,), manifest)
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return ImportSource("cvat", (path,), read_manifest(_manifest_near(path)))
    if suffix == ".json":
        return ImportSource("coco", (path,), read_manifest(_manifest_near(path)))
    raise InputError(
        f"{path}: wrong format: expected a CVAT .xml file, a COCO .json file or an export folder "
        f"(manifest.json with masks/), got a {suffix or 'suffix-less'} file."
    )


def read_import(source: ImportSource) -> tuple[list[ParsedMask], list[str]]:
    """Parse every file of an import: the masks found and the problems (one message per entry)."""
    parsed: list[ParsedMask] = []
    problems: list[str] = []
    for path in source.paths:
        if source.format == "png":
            found, bad = read_png_folder(path)
        elif not path.is_file():
            found, bad = [], [f"{path}: expected an annotation file of the export, found nothing."]
        elif source.format == "cvat":
            found, bad = read_cvat_file(path, source.manifest)
        else:
            found, bad = read_coco_file(path, source.manifest)
        parsed.extend(found)
        problems.extend(bad)
    return parsed, problems


class _StoreView:
    """Cached reads of the store for validation (summaries, frame tables, frames' masks)."""

    def __init__(self, store: PseudoLabelStore):
        self.store = store
        self.videos = set(store.videos())
        self._summaries: dict[str, VideoSummary] = {}
        self._tables: dict[str, FrameTable] = {}
        self._masks: dict[tuple[str, int], np.ndarray] = {}

    def summary(self, video_id: str) -> VideoSummary:
        if video_id not in self._summaries:
            self._summaries[video_id] = self.store.summary(video_id)
        return self._summaries[video_id]

    def table(self, video_id: str) -> FrameTable:
        if video_id not in self._tables:
            self._tables[video_id] = self.store.frame_table(video_id)
        return self._tables[video_id]

    def mask(self, video_id: str, frame: int, o: int) -> np.ndarray:
        key = (video_id, frame)
        if key not in self._masks:
            self._masks[key] = self.store.read_masks(video_id, frame)
        return self._masks[key][o]


def _check(view: _StoreView, manifest: Manifest, p: ParsedMask) -> tuple[str | None, bool]:
    """One parsed mask against the store and the manifest: ``(problem or None, skip)``."""
    if p.video_id not in view.videos:
        return (
            f"{p.where}: unknown video {p.video_id!r}: expected one of the store {sorted(view.videos)}.",
            False,
        )
    summary = view.summary(p.video_id)
    if not summary.complete:
        return (
            f"{p.where}: video {p.video_id!r} is incomplete (interrupted); rerun it and export again.",
            False,
        )
    if not 0 <= p.frame < summary.num_frames:
        return f"{p.where}: unknown frame {p.frame}: expected a frame in 0..{summary.num_frames - 1}.", False
    if p.object_id not in summary.object_ids:
        return (
            f"{p.where}: unknown object {p.object_id}: expected one of {list(summary.object_ids)} "
            f"of video {p.video_id!r}.",
            False,
        )
    if p.mask.shape != (summary.height, summary.width):
        return (
            f"{p.where}: wrong size: expected a {summary.height}x{summary.width} (HxW) mask, "
            f"got {p.mask.shape[0]}x{p.mask.shape[1]}.",
            False,
        )
    o = summary.object_ids.index(p.object_id)
    table = view.table(p.video_id)
    status = Status(int(table.status[p.frame, o]))
    stored = view.mask(p.video_id, p.frame, o)
    # Skipped before the revision check: re-running an import is a no-op, not an error.
    if status == Status.CORRECTED and np.array_equal(stored, p.mask):
        return None, True
    if status == Status.NOT_STARTED and not p.mask.any():
        return None, True
    entry = manifest.entry(p.video_id, p.frame, p.object_id)
    if entry is None:
        return (
            f"{p.where}: unknown frame: video {p.video_id!r} frame {p.frame} is not a frame of this "
            "export (only exported frames can be imported).",
            False,
        )
    revision = int(table.revision[p.frame, o]) if table.revision is not None else 0
    if revision != entry.revision:
        source = MaskSource(int(table.source[p.frame, o])).label if table.source is not None else "?"
        return (
            f"{p.where}: changed since the export: revision {entry.revision} ({entry.status}) at export, "
            f"now {revision} ({status.label}, source {source}). Export again and redo this frame.",
            False,
        )
    return None, False


def _same_location(a: str, b: str) -> bool:
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def store_mismatch(store: PseudoLabelStore, manifest: Manifest) -> str | None:
    """Why an export does not belong to ``store``, or None if it does.

    An export carries its store's id; one from another store (even with the same videos, frames
    and revisions) would overwrite masks it never saw. An export written before store ids, or
    from a store made before them, is matched by the store path its manifest names instead.
    """
    if manifest.store_id and store.store_id:
        if manifest.store_id == store.store_id:
            return None
        return (
            f"expected an export of this store (id {store.store_id}), got an export of store id "
            f"{manifest.store_id} ({manifest.store}). Import it into the store it came from, or "
            "export this store's queue and annotate that."
        )
    if _same_location(manifest.store, store.location):
        return None
    return (
        f"expected an export of this store ({store.location}), got one of {manifest.store or 'no store'}"
        f"{'' if manifest.store_id else ' without a store id (written before store ids)'}. "
        "Import it into the store it came from, or export this store's queue again."
    )


def plan_import(store: PseudoLabelStore, path: str | Path) -> ImportPlan:
    """Parse and validate an import completely, reading (never writing) the store.

    Raises:
        InputError: naming every bad entry, or an export of another store; nothing may be
            written then.
    """
    source = locate_import(path)
    mismatch = store_mismatch(store, source.manifest)
    if mismatch is not None:
        raise InputError(
            f"{path}: rejected the whole import (another store's export); the store is unchanged: " + mismatch
        )
    parsed, problems = read_import(source)
    view = _StoreView(store)
    updates: list[MaskUpdate] = []
    skipped: list[tuple[str, int, int]] = []
    seen: set[tuple[str, int, int]] = set()
    for p in parsed:
        key = (p.video_id, p.frame, p.object_id)
        if key in seen:
            problems.append(f"{p.where}: expected one mask per frame-object, got another for {key}.")
            continue
        seen.add(key)
        problem, skip = _check(view, source.manifest, p)
        if problem is not None:
            problems.append(problem)
        elif skip:
            skipped.append(key)
        else:
            updates.append(
                MaskUpdate(
                    p.video_id, p.frame, p.object_id, p.mask.astype(bool), MaskSource.HUMAN, Status.CORRECTED
                )
            )
    if not problems:
        problems = store.validate_updates(updates)  # the store's own checks, same as replace_masks
    if problems:
        entries = f"{len(problems)} bad entr{'y' if len(problems) == 1 else 'ies'}"
        raise InputError(
            f"{path}: rejected the whole import ({entries}); the store is unchanged:\n  - "
            + "\n  - ".join(problems)
        )
    return ImportPlan(source, tuple(updates), tuple(skipped))
