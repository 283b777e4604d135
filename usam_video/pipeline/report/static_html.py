"""The review report as static HTML: ``index.html`` and one page per video with its image
files, readable in any browser without a server (``usam-video report STORE --out DIR``)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import quote

from usam_video.config import DatasetConfig
from usam_video.evaluation.pages import Block, Code, Heading, Link, Table, render_html
from usam_video.output_folder import atomic_output_folder, check_output_folder
from usam_video.pipeline.evaluate import JfWithBaseline
from usam_video.pipeline.report.blocks import index_header, index_row, run_intro, video_blocks
from usam_video.pipeline.report.images import write_page_images
from usam_video.pipeline.report.run_report import RunReport, build_report

__all__ = ["write_static_report"]


def _file_stem(video_id: str) -> str:
    """A file name for a video id: its safe characters, plus a hash when any were replaced (two
    ids must never share a file)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id).strip(".") or "video"
    if safe != video_id:
        safe += "-" + hashlib.sha1(video_id.encode()).hexdigest()[:8]
    return safe


def write_static_report(
    store_path: str | Path,
    out_dir: str | Path,
    dataset: DatasetConfig | None = None,
    *,
    max_pages: int | None = None,
    worst: int = 4,
    ground_truth: bool = True,
    force: bool = False,
    jf: JfWithBaseline | None = None,
) -> Path:
    """Write a store's review report as static HTML: ``index.html`` (a row per video, most
    uncertain first, linking to its page) and ``videos/<video>.html`` with its timeline PNG and
    worst-frame JPEG beside it. Opens in any browser without a server; attachable to a release.

    ``out_dir`` must be new, empty or an earlier report left unchanged (its marker file lists
    what it holds; :mod:`usam_video.output_folder`); the report is written beside it under a
    temporary name and moved into place at the end, so a failure leaves nothing half-written.

    Args:
        dataset: where frames and ground truth come from (default each video's own).
        max_pages: how many of the most uncertain videos get a page (None: every video).
        worst, ground_truth, jf: as :func:`build_report` (``jf``: J&F already measured, shown
            as given).
        force: write into a non-empty folder that is not an earlier report: the report's own
            entries (``index.html``, ``videos/``) replace those of the same names, the rest stay.

    Returns:
        The path of ``index.html``.

    Raises:
        InputError: ``out_dir`` is a regular file or a user's non-empty folder (without ``force``).
        WriteError: the OS refused a write (read-only folder, full disk), with its reason.
    """
    check_output_folder(Path(out_dir), "report", force)  # before the store is read
    report = build_report(
        store_path, dataset=dataset, max_pages=max_pages, worst=worst, ground_truth=ground_truth, jf=jf
    )
    with atomic_output_folder(out_dir, "report", force) as staging:
        _write_html(report, staging)
    return Path(out_dir) / "index.html"


def _write_html(report: RunReport, out: Path) -> None:
    """The report's pages and images under ``out`` (see :func:`write_static_report`)."""
    pages_dir = out / "videos"
    pages_dir.mkdir(parents=True, exist_ok=True)
    links: dict[str, str] = {}
    for video_id in report.paged:
        stem = _file_stem(video_id)
        images = write_page_images(report, video_id, pages_dir, stem)
        nav = '<p><a href="../index.html">&larr; all videos</a></p>'
        page = render_html(video_id, video_blocks(report, video_id, images), lambda p: quote(p.name), nav)
        (pages_dir / f"{stem}.html").write_text(page, encoding="utf-8")
        links[video_id] = f"videos/{quote(stem)}.html"
    blocks: list[Block] = [Heading(1, ("Review report: where the videos go wrong",)), *run_intro(report)]
    rows = tuple(
        index_row(report, d, Link(d.video_id, links[d.video_id]) if d.video_id in links else Code(d.video_id))
        for d in report.videos
    )
    blocks.append(Table(index_header(report, "video"), rows))
    (out / "index.html").write_text(
        render_html(f"Review report of {report.store}", blocks, lambda p: quote(p.name)), encoding="utf-8"
    )
