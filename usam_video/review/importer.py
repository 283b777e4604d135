"""Read corrected masks back and check every one of them before anything is written.

:func:`plan_import` turns an annotator's files into ``MaskUpdate`` records (``HUMAN``,
``CORRECTED``) and collects *every* problem into one :class:`~usam_video.errors.InputError`:
undecodable RLE, wrong size, unknown video/frame/object, a file in the wrong format, and a
frame-object whose store ``revision`` moved since the export (someone corrected or relabelled it:
export again). It only reads the store; the caller writes the plan with
``PseudoLabelStore.replace_masks`` and then re-propagates the touched videos.

What becomes a correction (``corrected``, source ``human``), per frame-object in the files:

- **edited**: its mask differs from the one exported (the manifest's ``mask_sha256``);
- **confirmed**: unchanged, and it was *queued*: the reviewer was asked to look at it and left
  it as it is, so it is a reviewed mask;
- **not queued**: unchanged and exported only for context beside a queued object of its frame:
  left exactly as it was (status, source, revision).

Frame-objects left out of the files (a partial review) are not touched either.

Nothing the annotator drew is dropped silently: an export records the sha256 of every file it
wrote, and an import refuses an export whose view-only files (``palette/``, ``images/``) were
edited or added to, naming each file and where the edit belongs.

Idempotency: an entry whose mask equals the stored mask and whose frame-object is already
``corrected`` is skipped before the revision check, as is an empty mask for an object not yet
started on its frame; so running the same import twice changes nothing the second time. Each
import has an id (:func:`import_id`: the sha256 of its manifest and the annotation files it
reads), under which the store records the import's generation and history rows: an import
killed mid-way and run again resumes under the same generation and keeps no replaced mask twice.
The record is also keyed by the export (:func:`export_key`), so a rerun whose files were edited
after the kill (another id) finishes the interrupted import of the same export the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usam_video.errors import InputError
from usam_video.review.coco import COCO_FILE, read_coco_file
from usam_video.review.cvat import read_cvat_file
from usam_video.review.export import IMAGES_DIR
from usam_video.review.manifest import (
    AUDIT_FILE,
    MANIFEST_NAME,
    Manifest,
    changed_files,
    mask_digest,
    read_manifest,
)
from usam_video.review.png import MASKS_DIR, PALETTE_DIR, read_png_folder
from usam_video.review.records import ParsedMask
from usam_video.store import FrameTable, PseudoLabelStore, VideoSummary
from usam_video.types import MaskSource, MaskUpdate, Status, VideoResult

__all__ = [
    "ImportSource",
    "ImportPlan",
    "ImportResult",
    "locate_import",
    "import_id",
    "export_key",
    "view_edits",
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
            frame-object that changes: the edited and the confirmed ones.
        skipped: ``(video, frame, object)`` of entries already in the store (imported before) or
            empty masks of objects not started on their frame.
        edited, confirmed, not_queued: ``(video, frame, object)`` of the entries whose mask was
            edited; unchanged and queued (confirmed by the reviewer); unchanged and not queued
            (left as they are). ``edited`` and ``confirmed`` together are ``updates``.
        import_id: the import's id (:func:`import_id`).
        resumed: a first run of this import (or of another import of the same export) was
            interrupted; this one finishes it.
        batch_id: the store batch to write under: the interrupted one, else ``import_id``.
        export_key: the export's key (:func:`export_key`), recorded with the batch.
    """

    source: ImportSource
    updates: tuple[MaskUpdate, ...]
    skipped: tuple[tuple[str, int, int], ...]
    edited: tuple[tuple[str, int, int], ...] = ()
    confirmed: tuple[tuple[str, int, int], ...] = ()
    not_queued: tuple[tuple[str, int, int], ...] = ()
    import_id: str = ""
    resumed: bool = False
    batch_id: str = ""
    export_key: str = ""

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
        corrected: frame-objects written as corrections (edited + confirmed), per video.
        skipped: entries already in the store (imported before), or empty masks of objects not
            yet started.
        relabelled: the re-propagation of every touched video (empty with ``relabel=False`` or
            when nothing changed).
        generation: the store generation of the written corrections, or None if nothing was written.
        edited: corrections whose mask the annotator changed.
        confirmed: queued frame-objects left unchanged, written as confirmed corrections.
        not_queued: unchanged frame-objects that were only shown for context: left as they were.
        import_id: the import's id; resumed: this run finished an interrupted run of it.
    """

    path: Path
    format: str
    corrected: Mapping[str, int]
    skipped: int
    relabelled: tuple[VideoResult, ...] = field(default_factory=tuple)
    generation: int | None = None
    edited: int = 0
    confirmed: int = 0
    not_queued: int = 0
    import_id: str = ""
    resumed: bool = False

    @property
    def total_corrected(self) -> int:
        return sum(self.corrected.values())

    def describe(self) -> str:
        """One line of counts, e.g. ``1 edited, 10 confirmed unchanged (queued), 1 not queued
        (unchanged, left as it was), 0 already in the store``."""
        left = "it was" if self.not_queued == 1 else "they were"
        return (
            f"{self.edited} edited, {self.confirmed} confirmed unchanged (queued), "
            f"{self.not_queued} not queued (unchanged, left as {left}), {self.skipped} already in the store"
        )


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
        if path.name == PALETTE_DIR and (path.parent / MANIFEST_NAME).is_file():
            raise InputError(
                f"{path}: expected the export folder or its {MASKS_DIR}/ folder, got {PALETTE_DIR}/, a view "
                f"of the masks that the import does not read. Edit {MASKS_DIR}/<video>/<object:03d>/"
                f"<frame:05d>.png and import {path.parent}."
            )
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


def export_key(source: ImportSource) -> str:
    """Hex sha256 of the export's manifest: the store keys an import's batch by it, so a rerun
    with edited files still finds the interrupted import of the same export."""
    if source.manifest.path is None:
        raise InputError("import: expected a manifest read from a file, got one built in memory.")
    return hashlib.sha256(source.manifest.path.read_bytes()).hexdigest()


def import_id(source: ImportSource) -> str:
    """The id of an import: hex sha256 of the export's manifest and of every annotation file the
    import reads (path relative to the export, then bytes), so the same files give the same id
    on a rerun and any other edit gives another."""
    if source.manifest.path is None:
        raise InputError("import: expected a manifest read from a file, got one built in memory.")
    root = source.manifest.path.parent
    digest = hashlib.sha256(source.manifest.path.read_bytes())
    for path in source.paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            rel = file.relative_to(root).as_posix() if file.is_relative_to(root) else file.name
            digest.update(f"\0{rel}\0{file.stat().st_size}\0".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def view_edits(source: ImportSource) -> list[str]:
    """One problem per file the import does not read that was edited or added since the export
    (``palette/`` and ``images/``): the annotator drew there, and the import would drop it."""
    manifest = source.manifest
    if manifest.path is None:
        return []
    root = manifest.path.parent
    annotations = {
        "png": f"{MASKS_DIR}/<video>/<object:03d>/<frame:05d>.png (one binary PNG per object)",
        "cvat": "the CVAT annotations (annotations/<video>.xml)",
        "coco": "the COCO annotations (annotations.json)",
    }[source.format]
    problems = []
    for rel in changed_files(root, manifest, under=(PALETTE_DIR, IMAGES_DIR)):
        parts = rel.split("/")
        frame = Path(parts[-1]).stem
        where = annotations
        palette = parts[0] == PALETTE_DIR
        if palette and len(parts) == 3 and frame.isdigit():
            where = f"{MASKS_DIR}/{parts[1]}/<object:03d>/{frame}.png (one binary PNG per object)"
        what = "palette/ is a view of the masks" if palette else "images/ are the video's frames"
        problems.append(
            f"{rel}: edited or added since the export, but {what} and the import does not read it. "
            f"Make the edit in {where}, then delete {rel} (or export again)."
        )
    return problems


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


def _check(
    view: _StoreView, manifest: Manifest, p: ParsedMask, resumed_generation: int | None
) -> tuple[str | None, str]:
    """One parsed mask against the store and the manifest: ``(problem or None, kind)`` with kind
    ``skip``, ``edited``, ``confirmed`` or ``not_queued`` ("" with a problem).

    ``resumed_generation``: the generation of this import's interrupted first run, whose writes
    are this import's own, not a change since the export."""
    if p.video_id not in view.videos:
        return (
            f"{p.where}: unknown video {p.video_id!r}: expected one of the store {sorted(view.videos)}.",
            "",
        )
    summary = view.summary(p.video_id)
    if not summary.complete:
        return (
            f"{p.where}: video {p.video_id!r} is incomplete (interrupted); rerun it and export again.",
            "",
        )
    if not 0 <= p.frame < summary.num_frames:
        return f"{p.where}: unknown frame {p.frame}: expected a frame in 0..{summary.num_frames - 1}.", ""
    if p.object_id not in summary.object_ids:
        return (
            f"{p.where}: unknown object {p.object_id}: expected one of {list(summary.object_ids)} "
            f"of video {p.video_id!r}.",
            "",
        )
    if p.mask.shape != (summary.height, summary.width):
        return (
            f"{p.where}: wrong size: expected a {summary.height}x{summary.width} (HxW) mask, "
            f"got {p.mask.shape[0]}x{p.mask.shape[1]}.",
            "",
        )
    o = summary.object_ids.index(p.object_id)
    table = view.table(p.video_id)
    status = Status(int(table.status[p.frame, o]))
    stored = view.mask(p.video_id, p.frame, o)
    # Skipped before the revision check: re-running an import is a no-op, not an error.
    if status == Status.CORRECTED and np.array_equal(stored, p.mask):
        return None, "skip"
    if status == Status.NOT_STARTED and not p.mask.any():
        return None, "skip"
    entry = manifest.entry(p.video_id, p.frame, p.object_id)
    if entry is None:
        return (
            f"{p.where}: unknown frame: video {p.video_id!r} frame {p.frame} is not a frame of this "
            "export (only exported frames can be imported).",
            "",
        )
    # Edited or not is judged against what the export wrote, not against the store: after an
    # interrupted import the store may hold the edit already. Older manifests: the store's mask
    # (the revision check below makes sure it is the exported one).
    if entry.mask_sha256:
        edited = mask_digest(p.mask) != entry.mask_sha256
    else:
        edited = not np.array_equal(stored, p.mask)
    if not edited and not entry.queued:
        return None, "not_queued"  # never asked about, not changed: nothing to write
    revision = int(table.revision[p.frame, o]) if table.revision is not None else 0
    if revision != entry.revision and revision != resumed_generation:
        source = MaskSource(int(table.source[p.frame, o])).label if table.source is not None else "?"
        return (
            f"{p.where}: changed since the export: revision {entry.revision} ({entry.status}) at export, "
            f"now {revision} ({status.label}, source {source}). Export again and redo this frame.",
            "",
        )
    return None, "edited" if edited else "confirmed"


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


def _rejected(path: str | Path, problems: list[str]) -> InputError:
    """One error for every problem: a single one on one line, several as a list."""
    if len(problems) == 1:
        return InputError(f"{path}: rejected the whole import; the store is unchanged: {problems[0]}")
    return InputError(
        f"{path}: rejected the whole import ({len(problems)} bad entries); the store is unchanged:\n  - "
        + "\n  - ".join(problems)
    )


def plan_import(store: PseudoLabelStore, path: str | Path) -> ImportPlan:
    """Parse and validate an import completely, reading (never writing) the store.

    Raises:
        InputError: naming every bad entry, an edit in a file the import does not read, or an
            export of another store; nothing may be written then.
    """
    source = locate_import(path)
    if AUDIT_FILE in source.manifest.files:
        raise InputError(
            f"{path}: expected a review export, got an audit export ({AUDIT_FILE}): its truth is for "
            "'usam-video release --audit', which never relabels the store. To correct masks, export the "
            "queue ('usam-video export') and import that."
        )
    mismatch = store_mismatch(store, source.manifest)
    if mismatch is not None:
        raise InputError(
            f"{path}: rejected the whole import (another store's export); the store is unchanged: " + mismatch
        )
    edits_elsewhere = view_edits(source)
    if edits_elsewhere:
        raise _rejected(path, edits_elsewhere)
    parsed, problems = read_import(source)
    identity, export = import_id(source), export_key(source)
    earlier = store.batch(identity)
    if earlier is None or earlier.complete:
        # Killed, then the annotator changed a file before running it again: a new id, the same
        # export. The interrupted import is finished by this one (its generation, its history).
        interrupted = [b for b in store.batches(export) if not b.complete]
        earlier = interrupted[-1] if interrupted else earlier
    resumed_generation = earlier.generation if earlier is not None and not earlier.complete else None
    view = _StoreView(store)
    updates: list[MaskUpdate] = []
    skipped: list[tuple[str, int, int]] = []
    kinds: dict[str, list[tuple[str, int, int]]] = {"edited": [], "confirmed": [], "not_queued": []}
    seen: set[tuple[str, int, int]] = set()
    for p in parsed:
        key = (p.video_id, p.frame, p.object_id)
        if key in seen:
            problems.append(f"{p.where}: expected one mask per frame-object, got another for {key}.")
            continue
        seen.add(key)
        problem, kind = _check(view, source.manifest, p, resumed_generation)
        if problem is not None:
            problems.append(problem)
        elif kind == "skip":
            skipped.append(key)
        elif kind == "not_queued":
            kinds[kind].append(key)
        else:
            kinds[kind].append(key)
            updates.append(
                MaskUpdate(
                    p.video_id, p.frame, p.object_id, p.mask.astype(bool), MaskSource.HUMAN, Status.CORRECTED
                )
            )
    if not problems:
        problems = store.validate_updates(updates)  # the store's own checks, same as replace_masks
    if problems:
        raise _rejected(path, problems)
    return ImportPlan(
        source,
        tuple(updates),
        tuple(skipped),
        edited=tuple(kinds["edited"]),
        confirmed=tuple(kinds["confirmed"]),
        not_queued=tuple(kinds["not_queued"]),
        import_id=identity,
        resumed=resumed_generation is not None,
        batch_id=earlier.batch_id if resumed_generation is not None and earlier is not None else identity,
        export_key=export,
    )
