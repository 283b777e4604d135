"""Export the review queue for annotators: frames, their current masks, ``manifest.json``.

Which frames: every frame of a complete video with at least one frame-object queued for human
review (``queued_human``; with ``include_refine`` also ``queued_refine``), with *all* objects of
that frame (an annotator fixes a frame as a whole). Each frame's image is written as JPEG under
``images/<video>/<frame:05d>.jpg`` and referenced by relative path, so the export folder loads
directly into CVAT (a task per video from ``images/<video>/``) or a COCO viewer.

Each manifest entry says whether its frame-object was queued (what ``usam-video queue`` lists
and the reviewer is asked to look at) or only shown for context beside a queued object of its
frame; an unchanged context object is left as it is by the import. A queued entry that is one of
the review planner's picks carries the pick's review round (the store's plan entry).

The export goes through :func:`usam_video.output_folder.atomic_output_folder`, as ``report``
does: written under a hidden temporary sibling of ``out`` and renamed at the end, so a failed
export leaves nothing behind; ``out`` must be new, empty, or an earlier export of ours left
exactly as written (its marker file lists what it wrote). Anything else is refused unless
``force``; an earlier export edited since is refused with the advice to import it first.

The export never writes to the store. Frames come from a caller-supplied ``frame_sources``
(video id -> :class:`~usam_video.datasets.FrameSource`): the pipeline builds it from the run
config kept in the store, so this package needs neither the engine nor the pipeline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from usam_video.datasets import FrameSource
from usam_video.errors import InputError, VideoNotFoundError
from usam_video.output_folder import MARKER, atomic_output_folder
from usam_video.review.coco import COCO_FILE, write_coco
from usam_video.review.cvat import cvat_annotation_path, write_cvat_video
from usam_video.review.manifest import (
    EXPORT_FORMATS,
    MANIFEST_NAME,
    Manifest,
    ManifestEntry,
    ManifestFrame,
    ManifestVideo,
    changed_files,
    export_files,
    mask_digest,
    read_manifest,
    write_manifest,
)
from usam_video.review.png import MASKS_DIR, write_png_frames
from usam_video.review.records import ExportFrame
from usam_video.store import PseudoLabelStore, VideoSummary
from usam_video.types import MaskSource, Status

__all__ = ["IMAGES_DIR", "ExportResult", "FrameSources", "select_frames", "export_review"]

IMAGES_DIR = "images"

#: Video id -> a lazy source of that video's frames (``uint8`` ``(H, W, 3)`` RGB).
FrameSources = Callable[[str], FrameSource]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        annotations: the annotation files (CVAT: one XML per video; COCO: one JSON) or folders
            (PNG: ``masks/<video>``).
        frames: exported frames per video.
        frame_objects: exported frame-objects (manifest entries) in all.
        skipped_videos: video id -> why it was not exported (incomplete).
        queued: the exported frame-objects that were queued (what ``queue`` lists); the others
            are shown for context only.
    """

    out: Path
    format: str
    manifest: Path
    annotations: tuple[Path, ...]
    frames: Mapping[str, int]
    frame_objects: int
    skipped_videos: Mapping[str, str] = field(default_factory=dict)
    queued: int = 0

    @property
    def context(self) -> int:
        """Exported frame-objects that were not queued (shown beside a queued object)."""
        return self.frame_objects - self.queued

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())


def select_frames(
    store: PseudoLabelStore, video_id: str | None = None, include_refine: bool = False
) -> tuple[dict[str, list[int]], dict[str, str]]:
    """The frames to export per complete video (ascending), and the videos skipped with why.

    Raises:
        VideoNotFoundError: ``video_id`` is not in the store.
    """
    statuses = [Status.QUEUED_HUMAN, *([Status.QUEUED_REFINE] if include_refine else [])]
    if video_id is not None and video_id not in store.videos():
        raise VideoNotFoundError(
            f"{store.location}: expected video {video_id!r} in the store, found {store.videos()}."
        )
    selected: dict[str, list[int]] = {}
    skipped: dict[str, str] = {}
    for vid in [video_id] if video_id is not None else store.videos():
        if not store.is_complete(vid):
            skipped[vid] = "incomplete (interrupted); rerun it before exporting"
            continue
        status = store.frame_table(vid).status
        frames = np.flatnonzero(np.isin(status, statuses).any(axis=1)).tolist()
        if frames:
            selected[vid] = [int(t) for t in frames]
    return selected, skipped


def _refuse_unimported_edits(out: Path, force: bool) -> None:
    """Refuse an earlier export of ours whose files were edited since, with the remedy that
    keeps the annotator's work (import it first); :func:`atomic_output_folder` refuses any other
    folder that is not its own unchanged output."""
    if force or not (out / MANIFEST_NAME).is_file():
        return
    try:
        previous = read_manifest(out / MANIFEST_NAME)
    except InputError:
        return  # not ours: atomic_output_folder says so
    changed = [rel for rel in changed_files(out, previous) if rel != MARKER]
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise InputError(
            f"{out / changed[0]}: expected an earlier export left as written, got a file edited or "
            f"added since that export{more}. Import the edits first (usam-video import STORE "
            f"{out}), then pass --force to replace the export, or choose another --out."
        )


def _write_image(path: Path, frame: np.ndarray, height: int, width: int, where: str) -> None:
    if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
        raise InputError(
            f"{where}: expected a uint8 RGB frame of {height}x{width} like the store, got "
            f"{frame.dtype} {frame.shape}. The dataset changed since labelling; relabel the video."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path, quality=95)


def export_review(
    store: PseudoLabelStore,
    fmt: str,
    out: str | Path,
    frame_sources: FrameSources,
    video_id: str | None = None,
    include_refine: bool = False,
    force: bool = False,
    frames: Mapping[str, list[int]] | None = None,
    asked: set[tuple[str, int, int]] | None = None,
    extra_files: Mapping[str, str] | None = None,
) -> ExportResult:
    """Write the queued frames of ``store`` in format ``fmt`` (cvat, coco or png) to ``out``.

    Everything is written under a temporary sibling of ``out`` and renamed at the end: a failed
    export leaves ``out`` as it was and no temporary folder.

    Args:
        force: write into a non-empty ``out`` that is not an unedited earlier export of ours
            (its entries of the export's names are replaced, its other files kept).
        frames: ``{video: frames}`` to export instead of the queued ones (an audit sample).
        asked: the ``(video, frame, object id)`` the reviewer is asked about (the manifest's
            ``queued``) instead of the queued statuses.
        extra_files: ``{relative path: text}`` written beside the manifest (``audit.json``).

    Raises:
        InputError: unknown format, an ``out`` it may not replace, frames that do not match the store.
        VideoNotFoundError: ``video_id`` is not in the store.
        WriteError: the OS refused a write (read-only, no space), with its reason.
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"export format: expected one of {list(EXPORT_FORMATS)}, got {fmt!r}.")
    out = Path(out)
    _refuse_unimported_edits(out, force)
    if frames is None:
        selected, skipped = select_frames(store, video_id, include_refine)
    else:
        selected, skipped = {v: sorted(f) for v, f in frames.items() if f}, {}
    with atomic_output_folder(out, "export", force) as staging:
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text)
        result = _write_export(store, fmt, staging, frame_sources, selected, include_refine, asked)
    return ExportResult(
        out=out,
        format=fmt,
        manifest=out / MANIFEST_NAME,
        annotations=tuple(out / p.relative_to(staging) for p in result.annotations),
        frames=result.frames,
        frame_objects=result.frame_objects,
        skipped_videos=skipped,
        queued=result.queued,
    )


def _write_export(
    store: PseudoLabelStore,
    fmt: str,
    out: Path,
    frame_sources: FrameSources,
    selected: Mapping[str, list[int]],
    include_refine: bool,
    asked: set[tuple[str, int, int]] | None = None,
) -> ExportResult:
    """Write an export into the (new, empty) folder ``out``; ``manifest.json`` last."""
    statuses = ("queued_human", *(("queued_refine",) if include_refine else ()))

    videos: dict[str, ManifestVideo] = {}
    manifest_frames: list[ManifestFrame] = []
    entries: list[ManifestEntry] = []
    frames_by_video: dict[str, list[ExportFrame]] = {}
    for vid, frames in selected.items():
        summary = store.summary(vid)
        annotations = {"cvat": cvat_annotation_path(vid), "coco": COCO_FILE, "png": f"{MASKS_DIR}/{vid}"}[fmt]
        videos[vid] = ManifestVideo(
            summary.height, summary.width, summary.num_frames, summary.object_ids, annotations
        )
        exported, video_frames, video_entries = _export_video_frames(
            store, vid, summary, frames, out, frame_sources, statuses, asked
        )
        frames_by_video[vid] = exported
        manifest_frames.extend(video_frames)
        entries.extend(video_entries)
    written = _write_annotations(store, fmt, out, videos, frames_by_video)
    manifest = Manifest(
        store=str(Path(store.location).resolve()),
        store_id=store.store_id or "",
        annotation_format=fmt,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        statuses=statuses,
        videos=videos,
        frames=tuple(manifest_frames),
        entries=tuple(entries),
        files=export_files(out),  # before the manifest, which is not among them
    )
    return ExportResult(
        out=out,
        format=fmt,
        manifest=write_manifest(out, manifest),
        annotations=tuple(written),
        frames={vid: len(exported_frames) for vid, exported_frames in frames_by_video.items()},
        frame_objects=len(entries),
        queued=sum(e.queued for e in entries),
    )


def _export_video_frames(
    store: PseudoLabelStore,
    vid: str,
    summary: VideoSummary,
    frames: list[int],
    out: Path,
    frame_sources: FrameSources,
    statuses: tuple[str, ...],
    asked: set[tuple[str, int, int]] | None,
) -> tuple[list[ExportFrame], list[ManifestFrame], list[ManifestEntry]]:
    """Write the JPEG of each selected frame of one video under ``out`` and read its masks.

    Returns the frames to annotate (task frames numbered from 0 in the order of ``frames``),
    their manifest rows, and one manifest entry per frame-object, queued when its status is in
    ``statuses`` or, when ``asked`` is given, when it is in ``asked``; a queued review planner's
    pick with its round (none when ``asked`` is given: an audit asks about its own sample).
    """
    table = store.frame_table(vid)
    plan = store.review_plan(vid) if asked is None else {}
    h, w = summary.height, summary.width
    exported: list[ExportFrame] = []
    manifest_frames: list[ManifestFrame] = []
    entries: list[ManifestEntry] = []
    with frame_sources(vid) as source:
        for task_frame, t in enumerate(frames):
            image = f"{IMAGES_DIR}/{vid}/{t:05d}.jpg"
            _write_image(out / image, source[t], h, w, f"video {vid!r} frame {t}")
            status = table.status[t]
            exported.append(
                ExportFrame(
                    vid,
                    t,
                    task_frame,
                    image,
                    summary.object_ids,
                    store.read_masks(vid, t),
                    status != Status.NOT_STARTED,
                )
            )
            manifest_frames.append(ManifestFrame(vid, t, task_frame, image))
            masks = exported[-1].masks
            for o, obj in enumerate(summary.object_ids):
                label = Status(int(status[o])).label
                queued = label in statuses if asked is None else (vid, t, int(obj)) in asked
                pick = plan.get((t, int(obj))) if queued else None
                entries.append(
                    ManifestEntry(
                        vid,
                        t,
                        obj,
                        int(table.revision[t, o]) if table.revision is not None else 0,
                        label,
                        MaskSource(int(table.source[t, o])).label if table.source is not None else "",
                        table.reason_label(int(table.reason[t, o])),
                        queued=queued,
                        mask_sha256=mask_digest(masks[o]),
                        round=None if pick is None else int(pick["round"]),
                    )
                )
    return exported, manifest_frames, entries


def _write_annotations(
    store: PseudoLabelStore,
    fmt: str,
    out: Path,
    videos: Mapping[str, ManifestVideo],
    frames_by_video: Mapping[str, list[ExportFrame]],
) -> list[Path]:
    """The annotation files of the export in format ``fmt``: one CVAT XML per video, one COCO
    JSON, or one palette PNG per frame. Returns their paths."""
    every_frame = [f for exported in frames_by_video.values() for f in exported]
    written: list[Path] = []
    if fmt == "cvat":
        for vid, exported in frames_by_video.items():
            written.append(
                write_cvat_video(out / videos[vid].annotations, vid, exported, videos[vid].object_ids)
            )
    elif fmt == "coco":
        written.append(write_coco(out / COCO_FILE, every_frame, store.location))
    else:
        (out / MASKS_DIR).mkdir(exist_ok=True)
        written.extend(write_png_frames(out, every_frame))
    return written
