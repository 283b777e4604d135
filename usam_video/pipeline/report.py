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
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import numpy as np

from usam_video.config import DatasetConfig, RunConfig
from usam_video.errors import EvaluationError, InputError, UsamVideoError, VideoNotFoundError
from usam_video.evaluation.overlay import LostObject
from usam_video.evaluation.pages import (
    Block,
    Cell,
    Code,
    Heading,
    Image,
    Inline,
    Link,
    Para,
    Table,
    data_uri,
    render_html,
    render_markdown,
)
from usam_video.output_folder import atomic_output_folder, check_output_folder
from usam_video.pipeline.evaluate import jf_with_baseline
from usam_video.score_registry import is_known, score_info, to_uncertainty
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, Status

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

log = logging.getLogger(__name__)

#: The most bytes one markdown page (with its embedded images) may take. The Prefect UI loads an
#: artifact whole; a run's N pages must stay a few megabytes, not gigabytes.
MAX_PAGE_BYTES = 300_000
#: Share of a video's frames its uncertainty is averaged over (the worst ones): a short lost run
#: in a long video still ranks the video high, one noisy frame alone does not.
TAIL_FRACTION = 0.1
#: Widest the worst-frame strip is kept (pixels); JPEG quality of the strip.
STRIP_MAX_WIDTH = 760
STRIP_QUALITY = 75
#: Planner picks listed on a page (the rest are counted).
MAX_PLAN_ROWS = 25
_TIMELINE_DPI = 80
_TIMELINE_SIZE = (8.0, 3.0)  # inches: 640 x 240 px at _TIMELINE_DPI


@dataclass(frozen=True)
class PlanItem:
    """One pick of the review planner: ``rank`` 1 is asked for first; ``value`` is the chosen
    score of that frame-object (NaN when unscored)."""

    rank: int
    frame: int
    object_id: int
    value: float
    reason: str


@dataclass(frozen=True)
class VideoDigest:
    """What a page says about one stored video, read from its frame table and review plan.

    Attributes:
        score: the score drawn and ranked by (:func:`chosen_score`).
        uncertainty: mean of the worst :data:`TAIL_FRACTION` of its frame uncertainties, a
            frame's uncertainty being that of its most doubtful object (the registry's
            :func:`~usam_video.score_registry.to_uncertainty` of ``score``), conditioning
            frame-objects (prompts, corrections) left out; NaN when nothing is scored.
        worst_frames: the most uncertain frames, worst first, spaced apart (adjacent frames of
            one low run look alike); ``worst_objects``/``worst_values`` give each frame's most
            doubtful object and its score.
        queued_by_reason: ``(reason, count)`` of the queued frame-objects, most frequent first.
        plan: the review planner's picks by rank.
        jf, jf_baseline: J&F of the video and of the copy-first-mask baseline (ground truth only).
        untrained: the masks or scores come from random weights.
    """

    video_id: str
    score: str
    complete: bool
    frames: int
    objects: int
    uncertainty: float
    worst_frames: tuple[int, ...]
    worst_objects: tuple[int, ...]
    worst_values: tuple[float, ...]
    queued_human: int
    queued_refine: int
    corrected: int
    conditioning: int
    queued_by_reason: tuple[tuple[str, int], ...]
    plan: tuple[PlanItem, ...]
    jf: float | None = None
    jf_baseline: float | None = None
    untrained: bool = False


@dataclass(frozen=True)
class RunReport:
    """The digests of a store's videos, most uncertain first, and what the pages need.

    Attributes:
        store: the store as given (a path or an fsspec URL; pages reopen it).
        videos: one digest per video, most uncertain first (NaN uncertainty last).
        paged: ids of the videos that get a page with images: the ``max_pages`` first.
        dataset: the dataset frames and ground truth are read from (None: each video's own,
            from its provenance).
        jf, jf_baseline: overall J&F of the store and of the copy-first-mask baseline over the
            evaluated videos; None without ground truth (``jf_note`` says why).
        protocol: the J&F protocol (``"davis"``: values in [0, 1]; ``"sav"``: x100).
    """

    store: str
    videos: tuple[VideoDigest, ...]
    paged: tuple[str, ...]
    dataset: DatasetConfig | None = None
    jf: float | None = None
    jf_baseline: float | None = None
    jf_videos: int = 0
    jf_note: str = ""
    protocol: str = "davis"
    worst: int = 4
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({d.video_id: i for i, d in enumerate(self.videos)})

    def digest(self, video_id: str) -> VideoDigest:
        """The digest of ``video_id``; raises :class:`VideoNotFoundError` if it is not reported."""
        if video_id not in self._index:
            raise VideoNotFoundError(
                f"report of {self.store}: expected one of its {len(self.videos)} videos, got {video_id!r}."
            )
        return self.videos[self._index[video_id]]

    def rank(self, video_id: str) -> int:
        """1 for the most uncertain video."""
        self.digest(video_id)
        return self._index[video_id] + 1


# --------------------------------------------------------------------------------------
# Reading a store
# --------------------------------------------------------------------------------------


def _run_config(store: PseudoLabelStore, video_id: str) -> RunConfig:
    """The run config in a video's provenance. Imported here: ``pipeline.label`` loads torch and
    the engine, which reading a store for a report does not need."""
    from usam_video.pipeline.label import run_config_of

    return run_config_of(store, video_id)


def chosen_score(store: PseudoLabelStore, video_id: str, score_names: Sequence[str]) -> str:
    """The run's confidence score of a video: its human budget's ``priority`` when stored, else
    ``sam_iou``, else the first stored score with a direction in the score registry.

    Raises:
        EvaluationError: no stored score is a confidence or an uncertainty.
    """
    try:
        budget = _run_config(store, video_id).policy.human_budget
    except InputError:  # no run config in the provenance (an older store): fall back
        budget = None
    if budget is not None and budget.priority in score_names:
        return budget.priority
    if "sam_iou" in score_names:
        return "sam_iou"
    for name in score_names:
        if is_known(name) and score_info(name).direction != "feature":
            return name
    raise EvaluationError(
        f"video {video_id!r}: expected a confidence or uncertainty score among its scores, got "
        f"{list(score_names)}."
    )


def _spaced_worst(frame_u: np.ndarray, count: int, spacing: int) -> list[int]:
    """Up to ``count`` frames of highest uncertainty (``frame_u``, float ``(T,)``, NaN skipped),
    greedily, each at least ``spacing`` frames from those taken before."""
    order = [int(t) for t in np.argsort(-np.where(np.isfinite(frame_u), frame_u, -np.inf), kind="stable")]
    taken: list[int] = []
    for t in order:
        if len(taken) == count or not math.isfinite(frame_u[t]):
            break
        if all(abs(t - s) >= spacing for s in taken):
            taken.append(t)
    return taken


def digest_video(store: PseudoLabelStore, video_id: str, *, worst: int = 4) -> VideoDigest:
    """Read one video's :class:`VideoDigest` (``worst``: how many worst frames to keep).

    Raises:
        VideoNotFoundError: the store has no such video.
        EvaluationError: it has no score to rank by.
    """
    summary = store.summary(video_id)
    table = store.frame_table(video_id)
    score = chosen_score(store, video_id, table.score_names)
    values = table.scores[..., table.score_names.index(score)].astype(np.float64)  # (T, O)
    conditioning = np.zeros(table.status.shape, bool)
    if table.source is not None:
        conditioning = np.isin(table.source, [MaskSource.PROMPT, MaskSource.HUMAN])
    scored = ~np.isin(table.status, [Status.PENDING, Status.NOT_STARTED]) & ~conditioning
    uncertainty = np.where(scored, to_uncertainty(score, values), np.nan)  # (T, O), higher = worse
    with warnings.catch_warnings():  # all-NaN frames (nothing scored) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        frame_u = np.nanmax(uncertainty, axis=1) if uncertainty.shape[1] else np.full(len(values), np.nan)
    finite = np.sort(frame_u[np.isfinite(frame_u)])[::-1]
    video_u = (
        float(finite[: max(1, math.ceil(TAIL_FRACTION * len(finite)))].mean()) if finite.size else math.nan
    )
    frames = _spaced_worst(frame_u, worst, max(1, summary.num_frames // 16))
    objects = [int(np.nanargmax(uncertainty[t])) for t in frames]

    queued = np.isin(table.status, [Status.QUEUED_HUMAN, Status.QUEUED_REFINE])
    reasons = Counter(table.reason_label(int(code)) or "(none)" for code in table.reason[queued])
    ids = list(table.object_ids)
    plan = []
    for (t, obj), entry in store.review_plan(video_id).items():
        value = float(values[t, ids.index(obj)]) if obj in ids and 0 <= t < len(values) else math.nan
        plan.append(PlanItem(int(entry["rank"]), t, obj, value, str(entry.get("reason", ""))))
    provenance = summary.provenance
    return VideoDigest(
        video_id=video_id,
        score=score,
        complete=summary.complete,
        frames=summary.num_frames,
        objects=len(ids),
        uncertainty=video_u,
        worst_frames=tuple(frames),
        worst_objects=tuple(int(ids[o]) for o in objects),
        worst_values=tuple(float(values[t, o]) for t, o in zip(frames, objects, strict=True)),
        queued_human=int((table.status == Status.QUEUED_HUMAN).sum()),
        queued_refine=int((table.status == Status.QUEUED_REFINE).sum()),
        corrected=int((table.status == Status.CORRECTED).sum()),
        conditioning=int(conditioning.sum()),
        queued_by_reason=tuple(reasons.most_common()),
        plan=tuple(sorted(plan, key=lambda p: p.rank)),
        untrained=bool(provenance.get("model_untrained") or provenance.get("heads_untrained")),
    )


def _dataset_of(store: PseudoLabelStore, video_id: str, dataset: DatasetConfig | None) -> DatasetConfig:
    """``dataset`` when given, else the one the video was labelled from (its provenance)."""
    return dataset if dataset is not None else _run_config(store, video_id).dataset


def build_report(
    store_path: str | Path,
    video_ids: Sequence[str] | None = None,
    *,
    dataset: DatasetConfig | None = None,
    max_pages: int | None = None,
    worst: int = 4,
    ground_truth: bool = True,
) -> RunReport:
    """Digest a store's videos and rank them, most uncertain first.

    Args:
        store_path: the store (a path or an fsspec URL), read only.
        video_ids: the videos to report; default every video of the store.
        dataset: where frames and ground truth come from; default each video's own dataset
            (from its provenance; J&F then uses the first video's).
        max_pages: how many of the most uncertain videos get a page with images (None: all).
        worst: worst frames per page.
        ground_truth: evaluate J&F (and the copy-first-mask baseline) when the dataset has
            ground truth.

    Raises:
        StoreNotFoundError, VideoNotFoundError: no such store or video.
        InputError: a negative ``max_pages`` or a ``worst`` below 1.
    """
    if max_pages is not None and (isinstance(max_pages, bool) or max_pages < 0):
        raise InputError(f"report: expected max_pages >= 0 or None, got {max_pages!r}.")
    if isinstance(worst, bool) or worst < 1:
        raise InputError(f"report: expected worst >= 1 frames per page, got {worst!r}.")
    store = PseudoLabelStore.open(store_path, mode="r")
    stored = store.videos()
    ids = list(video_ids) if video_ids is not None else stored
    missing = [v for v in ids if v not in stored]
    if missing:
        raise VideoNotFoundError(f"{store.location}: expected videos of the store {stored}, got {missing}.")
    digests = [digest_video(store, v, worst=worst) for v in ids]
    # Most uncertain first; unscored videos (NaN) last, in their given order.
    digests.sort(
        key=lambda d: (math.isnan(d.uncertainty), 0.0 if math.isnan(d.uncertainty) else -d.uncertainty)
    )
    jf = baseline = None
    jf_note, protocol, jf_videos = "", "davis", 0
    if not ground_truth:
        jf_note = "J&F not computed (switched off)"
    elif digests:
        try:
            gt_dataset = _dataset_of(store, digests[0].video_id, dataset)
        except InputError as exc:
            jf_note = f"no J&F: {exc}"
        else:
            per_video, base, jf, baseline, protocol, jf_note = jf_with_baseline(store_path, gt_dataset, ids)
            jf_videos = len(per_video)
            digests = [
                replace(d, jf=per_video.get(d.video_id), jf_baseline=base.get(d.video_id)) for d in digests
            ]
    count = len(digests) if max_pages is None else min(max_pages, len(digests))
    return RunReport(
        store=str(store_path),
        videos=tuple(digests),
        paged=tuple(d.video_id for d in digests[:count]),
        dataset=dataset,
        jf=jf,
        jf_baseline=baseline,
        jf_videos=jf_videos,
        jf_note=jf_note,
        protocol=protocol,
        worst=worst,
    )


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Images:
    """A page's image files: the timeline PNG, and the worst-frame JPEG strip or why not; ``lost``:
    the strip's frame-objects whose mask is empty, and where each was last seen."""

    timeline: Path
    strip: Path | None
    strip_note: str = ""
    lost: tuple[LostObject, ...] = ()


def _write_images(report: RunReport, video_id: str, folder: Path, stem: str) -> _Images:
    """Draw a video's timeline (``<stem>-timeline.png``) and worst-frame strip
    (``<stem>-worst.jpg``, at most :data:`STRIP_MAX_WIDTH` px wide) into ``folder``."""
    from PIL import Image

    from usam_video.pipeline.overlay import find_lost, write_overlay
    from usam_video.pipeline.review import write_review_plan

    digest = report.digest(video_id)
    folder.mkdir(parents=True, exist_ok=True)
    timeline = write_review_plan(
        report.store,
        video_id,
        folder / f"{stem}-timeline.png",
        score=digest.score,
        dpi=_TIMELINE_DPI,
        figsize=_TIMELINE_SIZE,
    )
    if not digest.worst_frames:
        return _Images(timeline, None, "no scored frame to show")
    store = PseudoLabelStore.open(report.store, mode="r")
    lost: tuple[LostObject, ...] = ()
    try:
        # Read from the store alone, so that the page names a lost object even without frames.
        lost = find_lost(store, video_id, digest.worst_frames)
        dataset = _dataset_of(store, video_id, report.dataset)
        with tempfile.TemporaryDirectory(prefix="usam-report-") as tmp:
            png = write_overlay(
                report.store,
                dataset,
                video_id,
                Path(tmp) / "worst.png",
                frames=list(digest.worst_frames),
                score=digest.score,
                max_frames=len(digest.worst_frames),
                lost=lost,
            )
            with Image.open(png) as image:
                rgb = image.convert("RGB")
    except UsamVideoError as exc:
        # The frames may be gone (a moved dataset): the page still has its timeline and plan.
        log.warning("report: no worst-frame strip for %s: %s", video_id, exc)
        return _Images(timeline, None, f"frames unavailable: {exc}", lost)
    if rgb.width > STRIP_MAX_WIDTH:
        height = max(1, round(rgb.height * STRIP_MAX_WIDTH / rgb.width))
        rgb = rgb.resize((STRIP_MAX_WIDTH, height), Image.Resampling.LANCZOS)
    strip = folder / f"{stem}-worst.jpg"
    # JPEG: the strip is photographs; a PNG of it is several times larger.
    rgb.save(strip, format="JPEG", quality=STRIP_QUALITY, optimize=True)
    return _Images(timeline, strip, lost=lost)


# --------------------------------------------------------------------------------------
# Pages, as blocks rendered to markdown or HTML
# --------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _direction_text(score: str) -> str:
    return {
        "confidence": "a confidence: higher = more certain",
        "uncertainty": "an uncertainty: higher = less certain",
        "feature": "a video feature",
    }[score_info(score).direction]


def _jf_text(report: RunReport, jf: float | None, baseline: float | None) -> str:
    scale = " (x100)" if report.protocol == "sav" else ""
    return f"J&F{scale} {_num(jf)}, copying the first mask to every frame: {_num(baseline)}"


def _video_blocks(report: RunReport, video_id: str, images: _Images | None) -> list[Block]:
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
        f"{d.queued_refine}; corrected: {d.corrected}; planned corrections: {len(d.plan)}.",
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
    blocks.append(Heading(2, ("Review plan: what to fix, and why",)))
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


def _run_intro(report: RunReport) -> list[Block]:
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


def _index_row(report: RunReport, d: VideoDigest, page: Cell) -> tuple[Cell, ...]:
    row: tuple[Cell, ...] = (
        str(report.rank(d.video_id)),
        page,
        _num(d.uncertainty),
        ", ".join(str(t) for t in d.worst_frames),
        str(d.queued_human),
        str(len(d.plan)),
        str(d.corrected),
        _why(d),
    )
    if report.jf is not None:
        row += (_num(d.jf), _num(d.jf_baseline))
    return row


def _index_header(report: RunReport, page_column: str) -> tuple[str, ...]:
    header = (
        "rank",
        page_column,
        "uncertainty",
        "worst frames",
        "queued human",
        "planned",
        "corrected",
        "why",
    )
    return header + (("J&F", "J&F copy-first-mask") if report.jf is not None else ())


# --- renderers ---------------------------------------------------------------------------

# --- public pages ------------------------------------------------------------------------


def video_markdown(report: RunReport, video_id: str) -> str:
    """One video's page as markdown with its images embedded (data URIs), at most
    :data:`MAX_PAGE_BYTES` long: a strip that would exceed it is left out, and said so.

    Raises:
        VideoNotFoundError: the video is not in ``report``.
    """
    report.digest(video_id)
    with tempfile.TemporaryDirectory(prefix="usam-report-") as tmp:
        images = _write_images(report, video_id, Path(tmp), "page")
        text = render_markdown(_video_blocks(report, video_id, images), data_uri)
        if len(text.encode()) > MAX_PAGE_BYTES and images.strip is not None:
            size = len(text.encode()) // 1000
            images = replace(images, strip=None, strip_note=f"the page would be {size} kB, over the cap")
            text = render_markdown(_video_blocks(report, video_id, images), data_uri)
    if len(text.encode()) > MAX_PAGE_BYTES:
        text = render_markdown(_video_blocks(report, video_id, None), data_uri)
    return text


def run_markdown(report: RunReport, pages: Mapping[str, str], *, every_video: str = "") -> str:
    """The run's overview as markdown: which videos need a curator, worst first, and why.

    Args:
        pages: ``{video_id: the name of its page}`` (an artifact key) for the paged videos;
            only these get a row, so the overview stays small for any run.
        every_video: where the row of every video is (e.g. the run's table artifact).
    """
    blocks: list[Block] = [Heading(1, ("Review report: where the videos go wrong",)), *_run_intro(report)]
    rows = tuple(
        _index_row(report, report.digest(v), (Code(v), " → ", Code(pages[v])))
        for v in report.paged
        if v in pages
    )
    blocks.append(Table(_index_header(report, "video → page"), rows))
    rest = len(report.videos) - len(rows)
    if rest:
        where = (" (see ", Code(every_video), ")") if every_video else ()
        videos = "video has" if rest == 1 else "videos have"
        blocks.append(Para((f"{rest} less uncertain {videos} no page", *where, ".")))
    return render_markdown(blocks, data_uri)


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
        worst, ground_truth: as :func:`build_report`.
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
        store_path, dataset=dataset, max_pages=max_pages, worst=worst, ground_truth=ground_truth
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
        images = _write_images(report, video_id, pages_dir, stem)
        nav = '<p><a href="../index.html">&larr; all videos</a></p>'
        page = render_html(video_id, _video_blocks(report, video_id, images), lambda p: quote(p.name), nav)
        (pages_dir / f"{stem}.html").write_text(page, encoding="utf-8")
        links[video_id] = f"videos/{quote(stem)}.html"
    blocks: list[Block] = [Heading(1, ("Review report: where the videos go wrong",)), *_run_intro(report)]
    rows = tuple(
        _index_row(
            report, d, Link(d.video_id, links[d.video_id]) if d.video_id in links else Code(d.video_id)
        )
        for d in report.videos
    )
    blocks.append(Table(_index_header(report, "video"), rows))
    (out / "index.html").write_text(
        render_html(f"Review report of {report.store}", blocks, lambda p: quote(p.name)), encoding="utf-8"
    )
