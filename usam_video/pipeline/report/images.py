"""A review page's image files: a video's score timeline (PNG) and the strip of its worst
frames with their masks coloured by the score (JPEG, downscaled)."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from usam_video.errors import UsamVideoError
from usam_video.evaluation.overlay import LostObject
from usam_video.pipeline.report.digest import dataset_of
from usam_video.pipeline.report.run_report import RunReport
from usam_video.store import PseudoLabelStore

__all__ = ["STRIP_MAX_WIDTH", "STRIP_QUALITY", "PageImages", "write_page_images"]

log = logging.getLogger(__name__)

#: Widest the worst-frame strip is kept (pixels); JPEG quality of the strip.
STRIP_MAX_WIDTH = 760
STRIP_QUALITY = 75
_TIMELINE_DPI = 80
_TIMELINE_SIZE = (8.0, 3.0)  # inches: 640 x 240 px at _TIMELINE_DPI


@dataclass(frozen=True)
class PageImages:
    """A page's image files: the timeline PNG, and the worst-frame JPEG strip or why not; ``lost``:
    the strip's frame-objects whose mask is empty, and where each was last seen."""

    timeline: Path
    strip: Path | None
    strip_note: str = ""
    lost: tuple[LostObject, ...] = ()


def write_page_images(report: RunReport, video_id: str, folder: Path, stem: str) -> PageImages:
    """Draw a video's timeline (``<stem>-timeline.png``) and worst-frame strip
    (``<stem>-worst.jpg``, at most :data:`STRIP_MAX_WIDTH` px wide) into ``folder``."""
    from PIL import Image

    from usam_video.pipeline.overlay import find_lost, write_overlay
    from usam_video.pipeline.review import write_review_plan

    digest = report.digest(video_id)
    folder.mkdir(parents=True, exist_ok=True)
    store = PseudoLabelStore.opened(report.opened or report.store)
    # Read once for the timeline, the lost objects and the strip (a sharded run hands over
    # digests, not tables: each of the three read it again, every array's metadata and chunks).
    table = report.tables.get(video_id) or store.frame_table(video_id)
    timeline = write_review_plan(
        store,
        video_id,
        folder / f"{stem}-timeline.png",
        score=digest.score,
        dpi=_TIMELINE_DPI,
        figsize=_TIMELINE_SIZE,
        table=table,
    )
    if not digest.worst_frames:
        return PageImages(timeline, None, "no scored frame to show")
    lost: tuple[LostObject, ...] = ()
    try:
        # Read from the store alone, so that the page names a lost object even without frames.
        lost = find_lost(store, video_id, digest.worst_frames, table)
        dataset = dataset_of(store, video_id, report.dataset)
        with tempfile.TemporaryDirectory(prefix="usam-report-") as tmp:
            png = write_overlay(
                store,
                dataset,
                video_id,
                Path(tmp) / "worst.png",
                frames=list(digest.worst_frames),
                score=digest.score,
                max_frames=len(digest.worst_frames),
                lost=lost,
                table=table,
                reader=report.reader,
            )
            with Image.open(png) as image:
                rgb = image.convert("RGB")
    except UsamVideoError as exc:
        # The frames may be gone (a moved dataset): the page still has its timeline and plan.
        log.warning("report: no worst-frame strip for %s: %s", video_id, exc)
        return PageImages(timeline, None, f"frames unavailable: {exc}", lost)
    if rgb.width > STRIP_MAX_WIDTH:
        height = max(1, round(rgb.height * STRIP_MAX_WIDTH / rgb.width))
        rgb = rgb.resize((STRIP_MAX_WIDTH, height), Image.Resampling.LANCZOS)
    strip = folder / f"{stem}-worst.jpg"
    # JPEG: the strip is photographs; a PNG of it is several times larger.
    rgb.save(strip, format="JPEG", quality=STRIP_QUALITY, optimize=True)
    return PageImages(timeline, strip, lost=lost)
