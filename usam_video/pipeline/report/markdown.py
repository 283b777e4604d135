"""The review pages as markdown with their images embedded (data URIs), each capped at
:data:`MAX_PAGE_BYTES`: what the pseudo-label flow stores as Prefect artifacts."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from usam_video.evaluation.pages import Block, Code, Heading, Para, Table, data_uri, render_markdown
from usam_video.pipeline.report.blocks import index_header, index_row, run_intro, video_blocks
from usam_video.pipeline.report.images import write_page_images
from usam_video.pipeline.report.run_report import RunReport

__all__ = ["MAX_PAGE_BYTES", "run_markdown", "video_markdown"]

#: The most bytes one markdown page (with its embedded images) may take. The Prefect UI loads an
#: artifact whole; a run's N pages must stay a few megabytes, not gigabytes.
MAX_PAGE_BYTES = 300_000


def video_markdown(report: RunReport, video_id: str) -> str:
    """One video's page as markdown with its images embedded (data URIs), at most
    :data:`MAX_PAGE_BYTES` long: a strip that would exceed it is left out, and said so.

    Raises:
        VideoNotFoundError: the video is not in ``report``.
    """
    report.digest(video_id)
    with tempfile.TemporaryDirectory(prefix="usam-report-") as tmp:
        images = write_page_images(report, video_id, Path(tmp), "page")
        text = render_markdown(video_blocks(report, video_id, images), data_uri)
        if len(text.encode()) > MAX_PAGE_BYTES and images.strip is not None:
            size = len(text.encode()) // 1000
            images = replace(images, strip=None, strip_note=f"the page would be {size} kB, over the cap")
            text = render_markdown(video_blocks(report, video_id, images), data_uri)
    if len(text.encode()) > MAX_PAGE_BYTES:
        text = render_markdown(video_blocks(report, video_id, None), data_uri)
    return text


def run_markdown(report: RunReport, pages: Mapping[str, str], *, every_video: str = "") -> str:
    """The run's overview as markdown: which videos need a curator, worst first, and why.

    Args:
        pages: ``{video_id: the name of its page}`` (an artifact key) for the paged videos;
            only these get a row, so the overview stays small for any run.
        every_video: where the row of every video is (e.g. the run's table artifact).
    """
    blocks: list[Block] = [Heading(1, ("Review report: where the videos go wrong",)), *run_intro(report)]
    rows = tuple(
        index_row(report, report.digest(v), (Code(v), " → ", Code(pages[v])))
        for v in report.paged
        if v in pages
    )
    blocks.append(Table(index_header(report, "video → page"), rows))
    rest = len(report.videos) - len(rows)
    if rest:
        where = (" (see ", Code(every_video), ")") if every_video else ()
        videos = "video has" if rest == 1 else "videos have"
        blocks.append(Para((f"{rest} less uncertain {videos} no page", *where, ".")))
    return render_markdown(blocks, data_uri)
