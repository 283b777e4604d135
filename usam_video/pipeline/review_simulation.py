"""``simulate-review``: the ground truth plays the annotator, at several budgets, for every
stored score under every planner, beside the oracle and random.

Label once (resuming the run's store). Then, for each budget (a fraction of the run's
candidate frame-objects: tracked, not a prompt, on a frame with ground truth) and each strategy
(a score and a planner), the planner picks the frame-objects, their masks are replaced by the
ground truth as human corrections, the videos holding picks are propagated again with them as
conditioning frames (exactly as ``label_video`` relabels after an import), and J&F (DAVIS
protocol) is measured over the whole run.

Strategies:

* every stored score with a direction (the score registry's confidences and uncertainties;
  video features have none), under the ``per_frame`` planner (most uncertain first) and the
  ``runs`` planner (the onset of each run of low frames, ranked by the error mass after it);
* ``oracle``: the true IoU of each stored mask, under both planners: the reference a score is
  measured against;
* ``random``: a seeded random order (per frame).

The default strategy is the policy's ``human_budget`` (its ``priority`` under its ``plan``),
else ``iou_video`` under the runs planner when the run has the video heads.

A relabel depends only on the video and its set of corrections, so it is computed once and
reused by every strategy that picks the same set. Relabels run in memory (no store copy): each
frame goes through the label loop's own :func:`~usam_video.scoring.policy.decide_frame`, so the
masks are those ``label_video`` would store; a test checks this equals relabelling a store copy.

Every relabel of a video propagates all its frames again (a correction changes what SAM 2
attends to), but the image encoder's output of a frame is the same in all of them: a
:class:`~usam_video.engine.predictor.FeatureCache` keeps it across relabels, within a byte
budget (``feature_cache_bytes``), and the results are the same bit for bit.

Rounds (``rounds`` K > 1): the budget is split over K rounds (the first ``budget % K`` rounds
take one more). After each round but the last, every video corrected so far is relabelled from
all its corrections, its table is rescored (the relabel's scores and statuses, the true IoU of
its new masks) and the next round is planned on the rescored tables: a corrected frame-object
is never picked again. J&F is measured after every round. Cost: each round relabels the videos
it picks in (relabels are cached by the set of corrections, and the last round's relabels are
the J&F's), so K rounds cost at most K times the relabels of one, fewer where rounds pick in
the same videos' other rounds; planning is cheap beside a relabel.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from usam_video.config import RunConfig
from usam_video.engine import PropagationSession
from usam_video.errors import InputError
from usam_video.evaluation.jf import DavisSequenceResult, summarize_davis
from usam_video.evaluation.protocols import FrameMasks, davis_sequence
from usam_video.pipeline.context import RunContext, load_context
from usam_video.pipeline.eval_sources import gt_index_map
from usam_video.pipeline.label import label_dataset, prompts_with_corrections, scored_frames
from usam_video.pipeline.train_heads import mask_iou
from usam_video.review.budget import planner_settings, round_share, tracks_of, uncertainty_table
from usam_video.review.planner import Pick, PlannerSettings, plan_reviews
from usam_video.score_registry import direction_of, is_known
from usam_video.scoring.policy import decide_frame
from usam_video.store import PseudoLabelStore
from usam_video.types import FramePrediction, MaskSource, MaskUpdate, Status

if TYPE_CHECKING:
    from usam_video.engine.predictor import FeatureCache
    from usam_video.scoring.policy import FrameDecision

__all__ = [
    "DEFAULT_BUDGETS",
    "DEFAULT_FEATURE_CACHE_BYTES",
    "ORACLE",
    "PLANNERS",
    "RANDOM",
    "Relabel",
    "ReviewSimulation",
    "RoundResult",
    "StrategyResult",
    "SimulationReport",
    "VideoTable",
    "simulate_review",
    "strategy_name",
    "split_budget",
]

DEFAULT_BUDGETS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10)
#: The image-encoder outputs simulate-review keeps across relabels: 1 GiB holds every frame of
#: 24 x 48-frame videos with micro at 128 px (128 KiB a frame), 64 frames of SAM 2.1 at 1024 px.
DEFAULT_FEATURE_CACHE_BYTES = 1 << 30
PLANNERS: tuple[str, ...] = ("per_frame", "runs")
ORACLE = "oracle"
RANDOM = "random"
_ELIGIBLE = (Status.ACCEPTED, Status.QUEUED_REFINE, Status.QUEUED_HUMAN, Status.REFINED)


#: A video's table: ``(object_ids, score_names, scores float32 (T, O, S), tracked bool (T, O),
#: eligible bool (T, O), true_iou float64 (T, O))`` (NaN where not tracked or without ground truth).
VideoTable = tuple[tuple[int, ...], tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]
PickRow = tuple[str, int, int, str]  # (video, frame, object, reason)


@dataclass(frozen=True)
class RoundResult:
    """J&F after one round of a multi-round review.

    Attributes:
        round: 1-based.
        corrected: frame-objects corrected so far (this round's and every earlier round's).
        jf_after: global J&F after relabelling from every correction so far.
        picks: this round's picks.
    """

    round: int
    corrected: int
    jf_after: float
    picks: tuple[PickRow, ...] = ()


@dataclass(frozen=True)
class StrategyResult:
    """J&F after spending one budget with one strategy (a score under a planner), in one or more
    rounds (``rounds``: per round, empty for a single round)."""

    score: str
    planner: str
    budget_fraction: float
    corrected: int
    jf_before: float
    jf_after: float
    picks: tuple[PickRow, ...] = ()
    rounds: tuple[RoundResult, ...] = ()
    in_rounds: int = 1  # the K rounds the budget was spread over

    @property
    def strategy(self) -> str:
        return strategy_name(self.score, self.planner, self.in_rounds)

    @property
    def gain(self) -> float:
        return self.jf_after - self.jf_before


def strategy_name(score: str, planner: str, rounds: int = 1) -> str:
    """``score/planner``, and `` (K rounds)`` when the budget is spent in K > 1 rounds: one
    report can compare the same strategy in one round and in several."""
    name = f"{score}/{planner}"
    return name if rounds == 1 else f"{name} ({rounds} rounds)"


def _clean(v: float) -> float | None:
    return None if not math.isfinite(v) else round(v, 6)


@dataclass(frozen=True)
class SimulationReport:
    """Every strategy at every budget, with the default strategy named.

    Attributes:
        candidates: frame-objects a budget is a fraction of.
        budgets: ``{fraction: frame-objects}``.
        settings: the runs planner's settings (as a dict).
        rounds: the most rounds a budget was spread over (each result has its own count).
    """

    candidates: int
    budgets: Mapping[float, int]
    default_strategy: str
    settings: Mapping[str, Any]
    jf_before: float
    results: tuple[StrategyResult, ...]
    relabels: int = 0
    rounds: int = 1

    def result(self, strategy: str, budget_fraction: float) -> StrategyResult:
        for r in self.results:
            if r.strategy == strategy and math.isclose(r.budget_fraction, budget_fraction):
                return r
        raise KeyError(f"no result for {strategy} at {budget_fraction}")

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.strategy for r in self.results))

    def gains(self) -> dict[str, dict[float, float]]:
        """``{strategy: {budget fraction: J&F gain}}``."""
        out: dict[str, dict[float, float]] = {}
        for r in self.results:
            out.setdefault(r.strategy, {})[r.budget_fraction] = r.gain
        return out

    def round_gains(self) -> dict[str, dict[float, list[float]]]:
        """``{strategy: {budget fraction: [J&F gain after each round]}}`` (one round: the gain)."""
        out: dict[str, dict[float, list[float]]] = {}
        for r in self.results:
            per_round = [x.jf_after - r.jf_before for x in r.rounds] or [r.gain]
            out.setdefault(r.strategy, {})[r.budget_fraction] = per_round
        return out

    def as_dict(self, with_picks: bool = False) -> dict[str, Any]:
        """The report as JSON-ready data (``rounds`` and the per-round results only with more
        than one round, so a one-round report reads as before)."""
        return {
            "candidates": self.candidates,
            "budgets": {str(k): v for k, v in self.budgets.items()},
            "default_strategy": self.default_strategy,
            "planner_settings": dict(self.settings),
            "jf_before": _clean(self.jf_before),
            "relabels": self.relabels,
            **({"rounds": self.rounds} if self.rounds > 1 else {}),
            "results": [_result_dict(r, with_picks) for r in self.results],
        }


def _result_dict(r: StrategyResult, with_picks: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "strategy": r.strategy,
        "score": r.score,
        "planner": r.planner,
        "budget_fraction": r.budget_fraction,
        "corrected": r.corrected,
        "jf_after": _clean(r.jf_after),
        "gain": _clean(r.gain),
    }
    if with_picks:
        out["picks"] = [list(p) for p in r.picks]
    if r.rounds:
        out["rounds"] = [
            {
                "round": x.round,
                "corrected": x.corrected,
                "jf_after": _clean(x.jf_after),
                "gain": _clean(x.jf_after - r.jf_before),
                **({"picks": [list(p) for p in x.picks]} if with_picks else {}),
            }
            for x in r.rounds
        ]
    return out


@dataclass(frozen=True)
class Relabel:
    """A video relabelled from a set of corrections: its DAVIS result, and its rescored table
    when the simulation rescores (rounds), else None."""

    result: DavisSequenceResult
    table: VideoTable | None = None


@dataclass
class _Rescored:
    """What the relabel decided on every frame (the rows of a rescored :data:`VideoTable`)."""

    scores: np.ndarray
    status: np.ndarray
    source: np.ndarray

    @classmethod
    def for_video(cls, num_frames: int, num_objects: int, num_scores: int) -> _Rescored:
        shape = (num_frames, num_objects)
        return cls(
            np.full((*shape, num_scores), np.nan, np.float32),
            np.full(shape, Status.NOT_STARTED, np.uint8),
            np.zeros(shape, np.uint8),
        )

    def record(self, prediction: FramePrediction, decision: FrameDecision) -> None:
        t = prediction.frame_index
        self.scores[t] = decision.scores.values
        self.status[t] = decision.status
        self.source[t] = decision.source


def _video_table(
    reader: Any,
    video_id: str,
    object_ids: tuple[int, ...],
    score_names: tuple[str, ...],
    rows: _Rescored,
    masks_by_frame: Mapping[int, FrameMasks],
) -> VideoTable:
    """A video's :data:`VideoTable` from its statuses, sources and scores (``rows``) and its
    masks on the annotated frames (``masks_by_frame``: the true IoU is measured there)."""
    t_all, o_all = rows.status.shape
    tracked = rows.status != Status.NOT_STARTED
    eligible = np.isin(rows.status, _ELIGIBLE) & (rows.source != MaskSource.PROMPT)
    has_truth = np.zeros(t_all, bool)
    has_truth[list(masks_by_frame)] = True
    eligible &= has_truth[:, None]
    true_iou = np.full((t_all, o_all), np.nan)
    for t, frame_masks in masks_by_frame.items():
        ann = reader.ground_truth(video_id, t)
        if ann is None:
            continue
        for o, obj in enumerate(object_ids):
            if tracked[t, o]:
                true_iou[t, o] = mask_iou(frame_masks.masks[o], ann.mask_of(obj), ann.void)
    return object_ids, score_names, rows.scores, tracked, eligible, true_iou


@dataclass
class ReviewSimulation:
    """The labelled run, read once: per video its tables, ground truth and J&F before review.

    Attributes:
        tables: per video its :data:`VideoTable` as labelled.
        features: the image-encoder outputs kept across relabels (None: encode every frame of
            every relabel).
        cache: relabels by video and set of corrections.
    """

    context: RunContext
    videos: list[str]
    tables: dict[str, VideoTable]
    before: dict[str, DavisSequenceResult]
    gt_maps: dict[str, np.ndarray]
    annotated: dict[str, list[int]]
    cache: dict[tuple[str, frozenset[tuple[int, int]]], Relabel] = field(default_factory=dict)
    features: FeatureCache | None = None

    @classmethod
    def open(cls, run: RunConfig, feature_cache_bytes: int = 0) -> ReviewSimulation:
        """Read the run's labelled store (label it first) and the ground truth; keep up to
        ``feature_cache_bytes`` of image-encoder outputs across relabels (0: none)."""
        context = load_context(run)
        store = PseudoLabelStore.open(run.store_path, "r")
        reader = context.reader
        selected = set(reader.list_videos())
        videos = [v for v in store.videos() if v in selected and store.is_complete(v)]
        tables, before, gt_maps, annotated = {}, {}, {}, {}
        for video_id in videos:
            table = store.frame_table(video_id)
            ref = reader.video(video_id)
            frames = reader.annotated_frames(video_id)
            annotated[video_id] = frames
            if len(frames) < 3:
                continue  # the DAVIS protocol leaves the first and last annotated frame out
            gt_maps[video_id] = np.stack([gt_index_map(reader, ref, t) for t in frames])
            source = table.source if table.source is not None else np.zeros_like(table.status)
            masks_by_frame = {t: FrameMasks(table.object_ids, store.read_masks(video_id, t)) for t in frames}
            rows = _Rescored(table.scores, table.status, source)
            tables[video_id] = _video_table(
                reader, video_id, tuple(table.object_ids), tuple(table.score_names), rows, masks_by_frame
            )
            before[video_id] = davis_sequence(
                video_id, gt_maps[video_id], frames[1:-1], masks_by_frame, store.location
            )
        features = None
        if feature_cache_bytes > 0:
            from usam_video.engine.predictor import FeatureCache

            features = FeatureCache(feature_cache_bytes)
        return cls(
            context, [v for v in videos if v in before], tables, before, gt_maps, annotated, features=features
        )

    @property
    def candidates(self) -> int:
        return int(sum(t[4].sum() for t in self.tables.values()))

    def jf(self, results: Mapping[str, DavisSequenceResult]) -> float:
        """Global J&F over the run's videos, each from ``results`` or else before review."""
        report = summarize_davis(results.get(v, self.before[v]) for v in self.videos)
        return float(report.jf_mean)

    def uncertainty(
        self, video_id: str, score: str, seed: int, table: VideoTable | None = None
    ) -> np.ndarray:
        """``float64`` ``(T, O)``: higher = less certain, for a stored score, the oracle or random
        (of ``table``, default the video's table as labelled)."""
        object_ids, names, scores, tracked, _, true_iou = (
            table if table is not None else self.tables[video_id]
        )
        if score == ORACLE:
            return 1.0 - true_iou
        if score == RANDOM:
            rng = np.random.default_rng([seed, sum(map(ord, video_id))])
            return np.where(tracked, rng.random(tracked.shape), np.nan)
        return uncertainty_table(names, scores, score)

    def plan(
        self,
        score: str,
        settings: PlannerSettings,
        budget: int,
        seed: int = 0,
        tables: Mapping[str, VideoTable] | None = None,
    ) -> list[Pick]:
        """Up to ``budget`` picks by ``score`` under ``settings``, on ``tables`` (default: the
        tables as labelled)."""
        tables = self.tables if tables is None else tables
        tracks = []
        for video_id in self.videos:
            table = tables[video_id]
            object_ids, _, _, tracked, eligible, _ = table
            u = self.uncertainty(video_id, score, seed, table)
            tracks += tracks_of(video_id, object_ids, u, tracked, eligible)
        return plan_reviews(tracks, budget, settings)

    def relabelled(self, video_id: str, picks: Sequence[tuple[int, int]]) -> DavisSequenceResult:
        """The video's DAVIS result after the ground truth replaces the picked ``(frame, object)``
        masks and the video is propagated again (cached by the set of picks)."""
        return self._relabelled(video_id, picks).result

    def rescored(self, video_id: str, picks: Sequence[tuple[int, int]]) -> VideoTable:
        """The video's table after the relabel of :meth:`relabelled`: the scores, statuses (a
        correction is ``corrected``, so never eligible again) and true IoU ``label_video`` would
        leave (before its human budget, which changes no eligibility)."""
        relabel = self._relabelled(video_id, picks, rescore=True)
        assert relabel.table is not None
        return relabel.table

    def _relabelled(self, video_id: str, picks: Sequence[tuple[int, int]], rescore: bool = False) -> Relabel:
        key = (video_id, frozenset(picks))
        held = self.cache.get(key)
        if held is None or (rescore and held.table is None):
            self.cache[key] = held = self._relabel(video_id, sorted(key[1]), rescore)
        return held

    def corrections(self, video_id: str, picks: Sequence[tuple[int, int]]) -> list[MaskUpdate]:
        """The ground truth of the picked ``(frame, object)`` frame-objects of ``video_id`` as a
        person's corrections (what an import of them would write)."""
        out = []
        for t, obj in picks:
            annotation = self.context.reader.ground_truth(video_id, t)
            assert annotation is not None  # candidates have ground truth
            out.append(
                MaskUpdate(video_id, t, obj, annotation.mask_of(obj), MaskSource.HUMAN, Status.CORRECTED)
            )
        return out

    def _relabel(self, video_id: str, picks: list[tuple[int, int]], rescore: bool) -> Relabel:
        reader, model = self.context.reader, self.context.model
        corrections = self.corrections(video_id, picks)
        prompts, corrected = prompts_with_corrections(reader.prompts(video_id), corrections)
        policy, scorer = self.context.policy, self.context.scorer
        features = self.features.video(video_id) if self.features is not None else None
        session = PropagationSession(
            model, reader.frames(video_id), keep_candidates=policy.swaps_candidates, features=features
        )
        for prompt in prompts:
            session.add_prompt(prompt)
        prompt_masks = {(p.frame_index, p.object_id): p.mask for p in prompts if p.mask is not None}
        frames = self.annotated[video_id]
        object_ids, names = self.tables[video_id][:2]
        wanted = set(frames) if rescore else set(frames[1:-1])
        rows = _Rescored.for_video(len(session.frames), len(object_ids), len(names)) if rescore else None
        predicted: dict[int, FrameMasks] = {}
        for prediction, scores in scored_frames(session, scorer):
            t = prediction.frame_index
            if t not in wanted and rows is None:
                continue
            # The masks label_video would store: the same scores (the loop's batches on the
            # engine's device) and the same decision (task swaps, prompts and corrections
            # holding their own mask), only not written.
            decision = decide_frame(prediction, scores, policy, scorer, prompt_masks, corrected)
            if t in wanted:
                predicted[t] = FrameMasks(prediction.object_ids, decision.masks)
            if rows is not None:
                if prediction.object_ids != object_ids or decision.scores.names != names:
                    raise RuntimeError(
                        f"relabel of {video_id}: expected objects {object_ids} and scores {names} as "
                        f"stored, got {prediction.object_ids} and {decision.scores.names}"
                    )
                rows.record(prediction, decision)
        inner = {t: predicted[t] for t in frames[1:-1] if t in predicted}
        result = davis_sequence(video_id, self.gt_maps[video_id], frames[1:-1], inner, "relabel")
        table = None
        if rows is not None:
            table = _video_table(reader, video_id, object_ids, names, rows, predicted)
        return Relabel(result, table)

    def evaluate(self, picks: Sequence[Pick]) -> float:
        """Global J&F after correcting ``picks``."""
        by_video: dict[str, list[tuple[int, int]]] = {}
        for p in picks:
            by_video.setdefault(p.video_id, []).append((p.frame_index, p.object_id))
        return self.jf({v: self.relabelled(v, ps) for v, ps in by_video.items()})

    def review_in_rounds(
        self, score: str, settings: PlannerSettings, budget: int, rounds: int, seed: int = 0
    ) -> list[RoundResult]:
        """Spend ``budget`` in ``rounds`` (:func:`split_budget`): plan each round on the tables
        rescored from every correction so far, then relabel and measure J&F (see the module
        docstring). Rounds with no budget are left out."""
        tables = dict(self.tables)
        so_far: dict[str, list[tuple[int, int]]] = {}
        out: list[RoundResult] = []
        shares = [(index, share) for index, share in enumerate(split_budget(budget, rounds)) if share]
        for index, share in shares:
            picks = self.plan(score, settings, share, seed, tables)
            for p in picks:
                so_far.setdefault(p.video_id, []).append((p.frame_index, p.object_id))
            # Rounds still to come plan on the rescored tables of the videos picked in now.
            more = index < shares[-1][0]
            relabels = {v: self._relabelled(v, ps, rescore=more) for v, ps in so_far.items()}
            for video_id in {p.video_id for p in picks} if more else ():
                tables[video_id] = self.rescored(video_id, so_far[video_id])
            jf = self.jf({v: r.result for v, r in relabels.items()})
            rows = tuple((p.video_id, p.frame_index, p.object_id, p.reason) for p in picks)
            out.append(RoundResult(index + 1, sum(map(len, so_far.values())), jf, rows))
        return out


def split_budget(budget: int, rounds: int) -> list[int]:
    """``budget`` frame-objects over ``rounds`` rounds, the first ``budget % rounds`` one more.

    Raises:
        InputError: fewer than one round.
    """
    if rounds < 1:
        raise InputError(f"simulate review: expected 1 or more rounds, got {rounds}.")
    # The real loop's rule (a relabel after an import plans its round's share of what is left),
    # so that a simulation of K rounds is what ``human_budget.rounds: K`` does.
    shares = []
    for r in range(rounds):
        shares.append(round_share(budget - sum(shares), rounds - r))
    return shares


def _ranked_scores(names: Sequence[str]) -> list[str]:
    """Stored scores with a direction (confidences and uncertainties), in store order."""
    return [n for n in names if is_known(n) and direction_of(n) != "feature"]


def _default_strategy(run: RunConfig, names: Sequence[str]) -> tuple[str, str]:
    budget = run.policy.human_budget
    if budget is not None and budget.priority in names:
        return budget.priority, budget.plan.kind
    for score in ("iou_video", "lost_video", "iou_unsupervised", "sam_iou"):
        if score in names:
            return score, "runs"
    raise InputError(f"simulate review: expected a score to plan with among {list(names)}, found none.")


def _check_arguments(budgets: Sequence[float], planners: Sequence[str]) -> None:
    """Refuse budgets outside (0, 1] and unknown planners before any labelling starts."""
    bad = [b for b in budgets if not 0 < b <= 1]
    if bad or not budgets:
        raise InputError(f"simulate review: expected budget fractions in (0, 1], got {list(budgets)}.")
    unknown = set(planners) - set(PLANNERS)
    if unknown or not planners:
        raise InputError(f"simulate review: expected planners among {PLANNERS}, got {list(planners)}.")


def _open_simulation(run: RunConfig, label: bool, feature_cache_bytes: int = 0) -> ReviewSimulation:
    """Label (resume) the run when asked and read it; refuse a run with nothing to simulate."""
    if label:
        label_dataset(run)
    sim = ReviewSimulation.open(run, feature_cache_bytes)
    if not sim.videos or sim.candidates == 0:
        raise InputError(
            f"dataset {run.dataset.name!r}: expected ground truth on tracked frames, "
            "found none to simulate with."
        )
    return sim


def _chosen_scores(available: Sequence[str], scores: Sequence[str] | None) -> list[str]:
    """The stored scores to plan with: every ranked score by default, else ``scores`` without
    the oracle and random (always added later), refusing a score the run does not rank."""
    if scores is None:
        return list(available)
    missing = [s for s in scores if s not in available and s not in (ORACLE, RANDOM)]
    if missing:
        raise InputError(
            f"simulate review: expected scores the run stores with a direction ({', '.join(available)}), "
            f"got {missing}."
        )
    return [s for s in scores if s not in (ORACLE, RANDOM)]


def _settings_by_planner(run: RunConfig, settings: PlannerSettings | None) -> dict[str, PlannerSettings]:
    """``{"runs": ..., "per_frame": ...}``: the runs planner's settings (given, else the policy's
    ``human_budget.plan``) and the same settings as a per-frame planner that skips nothing."""
    budget_cfg = run.policy.human_budget
    runs_settings = settings or planner_settings(budget_cfg.plan if budget_cfg is not None else None)
    runs_settings = PlannerSettings(**{**runs_settings.__dict__, "kind": "runs"})
    per_frame = PlannerSettings(**{**runs_settings.__dict__, "kind": "per_frame", "skip_after": 0})
    return {"runs": runs_settings, "per_frame": per_frame}


def _strategy_results(
    sim: ReviewSimulation,
    strategies: Sequence[tuple[str, str]],
    by_planner: Mapping[str, PlannerSettings],
    budgets: Sequence[float],
    counts: Mapping[float, int],
    jf_before: float,
    seed: int,
    rounds: int = 1,
) -> list[StrategyResult]:
    """Plan, correct and measure every strategy at every budget (budgets outermost, in the
    caller's order), in ``rounds`` rounds; ``counts`` maps a budget fraction to its
    frame-objects."""
    results = []
    for b in budgets:
        for score, planner in strategies:
            if rounds == 1:
                picks = sim.plan(score, by_planner[planner], counts[b], seed)
                rows = tuple((p.video_id, p.frame_index, p.object_id, p.reason) for p in picks)
                results.append(
                    StrategyResult(score, planner, b, len(picks), jf_before, sim.evaluate(picks), rows)
                )
                continue
            per_round = sim.review_in_rounds(score, by_planner[planner], counts[b], rounds, seed)
            rows = tuple(row for r in per_round for row in r.picks)
            jf_after = per_round[-1].jf_after if per_round else jf_before
            results.append(
                StrategyResult(
                    score, planner, b, len(rows), jf_before, jf_after, rows, tuple(per_round), rounds
                )
            )
    return results


def simulate_review(
    run: RunConfig,
    budgets: Sequence[float] = DEFAULT_BUDGETS,
    scores: Sequence[str] | None = None,
    planners: Sequence[str] = PLANNERS,
    seed: int = 0,
    settings: PlannerSettings | None = None,
    label: bool = True,
    rounds: int | Sequence[int] = 1,
    feature_cache_bytes: int = DEFAULT_FEATURE_CACHE_BYTES,
) -> SimulationReport:
    """Label ``run`` and measure every strategy's J&F gain at every budget.

    Args:
        budgets: fractions in (0, 1] of the candidate frame-objects.
        scores: the scores to plan with (default: every stored score with a direction), plus
            ``oracle`` and ``random`` (always added).
        planners: ``per_frame`` and/or ``runs``.
        settings: the runs planner's settings (default: the policy's ``human_budget.plan``).
        label: label (resume) the run first; False when the store is known complete.
        rounds: the budget split over this many rounds, each planned on the tables rescored
            after the last (1: one plan on the labelled tables); several counts compare them
            in one report, every strategy once per count (named by :func:`strategy_name`).
        feature_cache_bytes: image-encoder outputs kept across relabels (0: none); the results
            are the same, only faster.

    Raises:
        InputError: a budget outside (0, 1], an unknown planner or score, fewer than one round,
            a negative cache budget, a dataset without ground truth on tracked frames.
    """
    _check_arguments(budgets, planners)
    counts_of_rounds = sorted({rounds} if isinstance(rounds, int) else set(rounds))
    if not counts_of_rounds:
        raise InputError("simulate review: expected 1 or more rounds, got no round count.")
    for k in counts_of_rounds:
        split_budget(0, k)  # refuses fewer than one round before any labelling
    if feature_cache_bytes < 0:
        raise InputError(
            f"simulate review: expected a feature cache of 0 or more bytes, got {feature_cache_bytes}."
        )
    sim = _open_simulation(run, label, feature_cache_bytes)
    names = sim.tables[sim.videos[0]][1]
    available = _ranked_scores(names)
    chosen = _chosen_scores(available, scores)
    default_score, default_planner = _default_strategy(run, available)
    by_planner = _settings_by_planner(run, settings)
    strategies = [(s, p) for s in [ORACLE, *chosen] for p in planners] + [(RANDOM, "per_frame")]
    jf_before = sim.jf({})
    counts = {b: max(1, int(math.floor(b * sim.candidates))) for b in budgets}
    results = [
        result
        for k in counts_of_rounds
        for result in _strategy_results(sim, strategies, by_planner, budgets, counts, jf_before, seed, k)
    ]
    return SimulationReport(
        candidates=sim.candidates,
        budgets=counts,
        default_strategy=strategy_name(default_score, default_planner, counts_of_rounds[0]),
        settings=by_planner["runs"].__dict__,
        jf_before=jf_before,
        results=tuple(results),
        relabels=len(sim.cache),
        rounds=counts_of_rounds[-1],
    )


def write_report(report: SimulationReport, out_dir: Path) -> list[Path]:
    """``simulate-review.json`` and ``gain-curves.png`` (J&F gain against budget per strategy)."""
    from usam_video.evaluation.plots import plot_gain_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "simulate-review.json"
    path.write_text(json.dumps(report.as_dict(with_picks=True), indent=1))
    png = plot_gain_curves(report.gains(), out_dir / "gain-curves.png", highlight=report.default_strategy)
    return [path, png]


def review_markdown(report: SimulationReport, gain_png: Path | None = None) -> str:
    """The report as markdown: J&F gain per strategy (rows) and budget (columns), the default
    strategy first, then the oracle and random; the gain curves embedded when given."""
    budgets = list(report.budgets)
    gains = report.gains()
    first = [report.default_strategy, "oracle/runs", "oracle/per_frame", "random/per_frame"]
    order = list(dict.fromkeys(s for s in first if s in gains)) + sorted(s for s in gains if s not in first)
    lines = [
        "# Simulated review: J&F gain by budget",
        "",
        f"J&F before review {report.jf_before:.4f}; {report.candidates} candidate frame-objects; "
        f"default strategy `{report.default_strategy}`; {report.relabels} videos relabelled.",
        "",
        "| strategy | " + " | ".join(f"{b:.0%} ({report.budgets[b]})" for b in budgets) + " |",
        "| --- |" + " --- |" * len(budgets),
    ]
    for name in order:
        cells = [f"{gains[name][b]:+.4f}" if b in gains[name] else "" for b in budgets]
        label = f"**{name}** (default)" if name == report.default_strategy else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if report.rounds > 1:
        lines += _rounds_markdown(report, order)
    if gain_png is not None:
        import base64

        encoded = base64.b64encode(Path(gain_png).read_bytes()).decode("ascii")
        lines += ["", f"![J&F gain against budget](data:image/png;base64,{encoded})"]
    return "\n".join(lines) + "\n"


def _rounds_markdown(report: SimulationReport, order: Sequence[str]) -> list[str]:
    """Per strategy and budget, the J&F gain and the corrections so far after each round."""
    budgets = list(report.budgets)
    by_name = {(r.strategy, r.budget_fraction): r for r in report.results}
    lines = [
        "",
        "## After each round: J&F gain (corrections so far)",
        "",
        "| strategy | " + " | ".join(f"{b:.0%}" for b in budgets) + " |",
        "| --- |" + " --- |" * len(budgets),
    ]
    for name in order:
        cells = []
        for b in budgets:
            r = by_name.get((name, b))
            steps = r.rounds if r is not None else ()
            cells.append(" / ".join(f"{x.jf_after - r.jf_before:+.4f} ({x.corrected})" for x in steps if r))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
