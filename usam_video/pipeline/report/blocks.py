"""The content of the review pages as blocks (:mod:`usam_video.evaluation.pages`), rendered
to markdown or to HTML by their callers: a video's page, the run's introduction and the
index rows, one per video."""

from __future__ import annotations

import math

from usam_video.evaluation.pages import Block, Cell, Code, Heading, Image, Inline, Para, Table
from usam_video.pipeline.report.digest import TAIL_FRACTION, VideoDigest
from usam_video.pipeline.report.images import PageImages
from usam_video.pipeline.report.run_report import RunReport
from usam_video.score_registry import score_info

__all__ = ["MAX_PLAN_ROWS", "index_header", "index_row", "run_intro", "video_blocks"]

#: Planner picks listed on a page (the rest are counted).
MAX_PLAN_ROWS = 25


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _direction_text(score: str) -> str:
    return {
        "confidence": "a confidence: higher = more certain",
        "uncertainty": "an uncertainty: higher = less certain",
        "feature": "a video feature",
    }[score_info(score).direction]


def _left(d: VideoDigest) -> str:
    """What a video's human budget has left, for a page or a cell."""
    return "no per-video cap" if d.budget_left is None else str(d.budget_left)


def _jf_text(report: RunReport, jf: float | None, baseline: float | None) -> str:
    scale = " (x100)" if report.protocol == "sav" else ""
    return f"J&F{scale} {_num(jf)}, copying the first mask to every frame: {_num(baseline)}"


def video_blocks(report: RunReport, video_id: str, images: PageImages | None) -> list[Block]:
    """A video's page: its facts, timeline, worst frames and review plan (``images`` None: the
    page without images)."""
    d = report.digest(video_id)
    blocks: list[Block] = [
        Heading(1, (Code(video_id), f": uncertainty rank {report.rank(video_id)} of {len(report.videos)}"))
    ]
    facts: list[Inline] = [
        f"{d.frames} frame{'s' if d.frames != 1 else ''}, {d.objects} object{'s' if d.objects != 1 else ''}; "
        "score ",
        Code(d.score),
        f" ({_direction_text(d.score)}). Video uncertainty {_num(d.uncertainty)} (mean of its worst "
        f"{TAIL_FRACTION:.0%} frames). Queued for a human: {d.queued_human}, for refinement: "
        f"{d.queued_refine}; corrected: {d.corrected}; planned corrections: {len(d.plan)}. "
        f"Review round {d.review_round}: human budget spent {d.corrected}, left {_left(d)}.",
    ]
    if d.jf is not None:
        facts.append(f" {_jf_text(report, d.jf, d.jf_baseline)}.")
    if not d.complete:
        facts.append(" INCOMPLETE video: labelling did not finish.")
    if d.untrained:
        facts.append(" RANDOM weights: these masks or scores are not real.")
    blocks.append(Para(tuple(facts)))
    if d.plan:
        first = d.plan[0]
        blocks.append(
            Para(
                (
                    f"Fix first: frame {first.frame}, object {first.object_id} ({d.score} "
                    f"{_num(first.value)}): {first.reason or 'picked by the review planner'}.",
                )
            )
        )
    blocks.append(Heading(2, ("Timeline",)))
    if images is not None:
        blocks.append(Image(f"timeline of {video_id}", images.timeline))
    blocks.append(
        Para(
            (
                "Each line is an object's score per frame. Red triangles (#rank): corrections the "
                "review planner asks for; rings: queued frame-objects; green diamonds: "
                "corrected; dotted lines: conditioning frames (prompts and corrections).",
            )
        )
    )
    blocks.append(Heading(2, ("Worst frames",)))
    if images is not None and images.strip is not None:
        blocks.append(Image(f"worst frames of {video_id}", images.strip))
    elif images is not None:
        blocks.append(Para((f"No strip: {images.strip_note}.",)))
    if images is not None and images.lost:
        # Said in words too: a dashed outline in a small JPEG is easy to miss, and the strip may
        # have been left out.
        where = "; ".join(f"frame {item.frame_index}, {item.text}" for item in images.lost)
        blocks.append(
            Para((f"Lost (empty mask; outlined dashed where it was last seen, when it was): {where}.",))
        )
    blocks.append(
        Table(
            ("frame", "most doubtful object", d.score),
            tuple(
                (str(t), str(o), _num(v))
                for t, o, v in zip(d.worst_frames, d.worst_objects, d.worst_values, strict=True)
            ),
        )
    )
    return blocks + _plan_blocks(d)


def _plan_blocks(d: VideoDigest) -> list[Block]:
    """A page's review plan (its first :data:`MAX_PLAN_ROWS` picks) and its queue by policy rule."""
    blocks: list[Block] = [Heading(2, ("Review plan: what to fix, and why",))]
    if d.plan:
        shown = d.plan[:MAX_PLAN_ROWS]
        blocks.append(
            Table(
                ("rank", "frame", "object", d.score, "why"),
                tuple((str(p.rank), str(p.frame), str(p.object_id), _num(p.value), p.reason) for p in shown),
            )
        )
        if len(d.plan) > len(shown):
            blocks.append(Para((f"... and {len(d.plan) - len(shown)} more picks.",)))
    else:
        blocks.append(Para(("No review plan: the run has no human budget, or nothing was picked.",)))
    if d.queued_by_reason:
        blocks.append(Heading(2, ("Queued, by policy rule",)))
        blocks.append(Table(("reason", "frame-objects"), tuple((r, str(n)) for r, n in d.queued_by_reason)))
    return blocks


def run_intro(report: RunReport) -> list[Block]:
    paged = len(report.paged)
    who = "every video has" if paged == len(report.videos) else f"the {paged} most uncertain have"
    text: list[Inline] = [
        f"{len(report.videos)} videos of ",
        Code(report.store),
        f", most uncertain first; {who} a page with a timeline, the worst frames and the review plan.",
    ]
    if report.jf is not None:
        text.append(
            f" Overall over {report.jf_videos} videos: {_jf_text(report, report.jf, report.jf_baseline)}."
        )
    elif report.jf_note:
        text.append(f" {report.jf_note}.")
    return [Para(tuple(text))]


def _why(d: VideoDigest) -> str:
    """The first planner reason of a video, else its queue's policy rules, shortened for a cell."""
    if d.plan:
        text = f"frame {d.plan[0].frame}, object {d.plan[0].object_id}: {d.plan[0].reason}"
    elif d.queued_by_reason:
        text = "queued: " + ", ".join(f"{reason} ({count})" for reason, count in d.queued_by_reason)
    else:
        return ""
    return text if len(text) <= 90 else text[:87] + "..."


def index_row(report: RunReport, d: VideoDigest, page: Cell) -> tuple[Cell, ...]:
    row: tuple[Cell, ...] = (
        str(report.rank(d.video_id)),
        page,
        _num(d.uncertainty),
        ", ".join(str(t) for t in d.worst_frames),
        str(d.queued_human),
        str(len(d.plan)),
        str(d.corrected),
        str(d.review_round),
        _left(d),
        _why(d),
    )
    if report.jf is not None:
        row += (_num(d.jf), _num(d.jf_baseline))
    return row


def index_header(report: RunReport, page_column: str) -> tuple[str, ...]:
    header = (
        "rank",
        page_column,
        "uncertainty",
        "worst frames",
        "queued human",
        "planned",
        "corrected",
        "round",
        "budget left",
        "why",
    )
    return header + (("J&F", "J&F copy-first-mask") if report.jf is not None else ())
