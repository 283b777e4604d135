"""Review pages of a store: where each video goes wrong, and what a curator is asked to fix.

One page per video holds, for the run's chosen confidence score (the human budget's priority,
else ``sam_iou``): a timeline of each object's score per frame marking conditioning, queued,
corrected and planned frame-objects (:func:`usam_video.pipeline.review.write_review_plan`); a
strip of the worst frames with their masks coloured by the score
(:func:`usam_video.pipeline.overlay.write_overlay`, downscaled); the review planner's picks
with its reasons; and, with ground truth, the video's J&F beside the copy-first-mask baseline.

The same pages are written two ways from one description (a list of blocks):

* :func:`video_markdown` and :func:`run_markdown`: markdown with the images embedded as data
  URIs, capped at :data:`MAX_PAGE_BYTES`, which the pseudo-label flow stores as Prefect artifacts;
* :func:`write_static_report`: an ``index.html`` and one HTML page per video with its image
  files, readable without a server (``usam-video report STORE --out DIR``).

A size cap keeps a run of thousands of videos cheap: only the ``max_pages`` most uncertain
videos get a page with images; every video gets a row in the index. No Prefect here.

One module per job: :mod:`~usam_video.pipeline.report.digest` (what a page says about one
video), :mod:`~usam_video.pipeline.report.run_report` (the videos ranked, with J&F),
:mod:`~usam_video.pipeline.report.images` (timeline and worst-frame strip),
:mod:`~usam_video.pipeline.report.blocks` (the pages' content),
:mod:`~usam_video.pipeline.report.markdown` and :mod:`~usam_video.pipeline.report.static_html`
(the two renderings).
"""

from __future__ import annotations

from usam_video.pipeline.report.digest import PlanItem, VideoDigest, chosen_score, digest_video
from usam_video.pipeline.report.markdown import MAX_PAGE_BYTES, run_markdown, video_markdown
from usam_video.pipeline.report.run_report import RunReport, build_report
from usam_video.pipeline.report.static_html import write_static_report

__all__ = [
    "MAX_PAGE_BYTES",
    "PlanItem",
    "VideoDigest",
    "RunReport",
    "chosen_score",
    "digest_video",
    "build_report",
    "video_markdown",
    "run_markdown",
    "write_static_report",
]
