"""Review planner: which frame-objects a human should correct, chosen by expected J&F gain.

Correcting the frames with the highest per-frame uncertainty wastes the human budget: the worst
frames cluster on a few lost objects, where ONE correction followed by re-propagation through
SAM 2 fixes the whole run of bad frames after it. Measured with the true IoU as the score at a 5%
budget, lowest-IoU-first gained +0.047 J&F, lowest-first skipping the next 8 frames of an object
already picked +0.080, and the onset of each run of frames below a score quantile (0.35), runs
ranked by their error mass, +0.0855.

Two planners (:class:`PlannerSettings.kind`):

``"runs"`` (default)
    Per track (one object of one video) the *low* frames are found: their uncertainty is among
    the top ``low_quantile`` fraction of the pool (every finite uncertainty of every track), or
    above ``threshold``. Low frames separated by at most ``merge_gap`` non-low frames form one
    run. A run's pick is its onset, the first eligible frame in it, and its value is the error
    mass of its low frames from the pick to the run's end (a correction fixes the frames after
    it until the track fails again). Runs are picked greedily by value; every pick already made
    on the same track multiplies a run's value by ``object_decay`` and every pick in the same
    video by ``video_decay``, which spreads the budget over objects and videos. Budget left when
    the runs are exhausted goes to single eligible frames by uncertainty (see
    :func:`plan_reviews`).

``"per_frame"``
    Eligible frames by uncertainty, highest first, with the skip rule when ``skip_after > 0``
    ("lowest first with skip rule"); ``skip_after=0`` is the plain per-frame ordering.

Numpy only; the lead turns stored confidences into :class:`Track` via the score registry.
"""

from __future__ import annotations

import heapq
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from usam_video.errors import InputError

__all__ = [
    "MASS_KINDS",
    "PLANNER_KINDS",
    "Pick",
    "PlannerSettings",
    "Track",
    "plan_reviews",
    "rank_percentile",
]

PLANNER_KINDS = ("runs", "per_frame")
MASS_KINDS = ("rank", "value")

# ``rank_percentile`` divides average ranks by the pool size, so a frame exactly at the quantile
# boundary can land a rounding error either side of ``1 - low_quantile``; this keeps it out.
_BOUNDARY_EPS = 1e-12


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def rank_percentile(values: np.ndarray) -> np.ndarray:
    """Rank percentiles of ``values``: the highest gets 1, ties share their average rank.

    Args:
        values: real array of any shape; NaN marks unknown entries.

    Returns:
        float64 array of the same shape: ``average rank / number of non-NaN entries``, in
        (0, 1] for the non-NaN entries (the smallest of n distinct values gets 1/n), NaN where
        ``values`` is NaN.

    Raises:
        InputError: ``values`` is not a real numeric array.
    """
    arr = np.asarray(values)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise InputError(f"rank_percentile: expected a real numeric array, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    out = np.full(arr.shape, np.nan)
    known = ~np.isnan(arr)
    vals = arr[known]
    n = vals.size
    if n == 0:
        return out
    order = np.argsort(vals, kind="stable")
    _, first, counts = np.unique(vals[order], return_index=True, return_counts=True)
    # ranks are 1-based; a tie group occupying ranks first+1 .. first+count averages to this
    group_rank = first + (counts + 1) / 2.0
    ranks = np.empty(n)
    ranks[order] = np.repeat(group_rank, counts)
    out[known] = ranks / n
    return out


@dataclass(frozen=True, eq=False)
class Track:
    """The uncertainty sequence of one object of one video.

    Attributes:
        video_id: the video.
        object_id: the object within the video.
        frames: int64 (T,) frame indices, strictly ascending, >= 0.
        uncertainty: float64 (T,), higher = less certain; NaN = unknown (never low, never picked).
        eligible: bool (T,), frames a reviewer may be asked to correct (annotated, not a prompt).

    The arrays are copied, converted to those dtypes and made read-only.

    Raises:
        InputError: wrong types, shapes, dtypes, order, or an infinite uncertainty.
    """

    video_id: str
    object_id: int
    frames: np.ndarray
    uncertainty: np.ndarray
    eligible: np.ndarray

    def __post_init__(self) -> None:
        where = f"Track({self.video_id!r}, {self.object_id!r})"
        if not isinstance(self.video_id, str) or not self.video_id:
            raise InputError(f"{where}: expected a non-empty str video_id, got {self.video_id!r}.")
        if not _is_int(self.object_id):
            raise InputError(f"{where}: expected an int object_id, got {type(self.object_id).__name__}.")
        frames = np.asarray(self.frames)
        if frames.ndim != 1:
            raise InputError(f"{where}: expected frames of shape (T,), got shape {frames.shape}.")
        t = frames.shape[0]
        if t and not np.issubdtype(frames.dtype, np.integer):
            raise InputError(f"{where}: expected integer frame indices, got dtype {frames.dtype}.")
        frames = frames.astype(np.int64)
        if t and (frames[0] < 0 or np.any(np.diff(frames) <= 0)):
            raise InputError(
                f"{where}: expected strictly ascending frame indices >= 0, got {frames[:8].tolist()}..."
            )
        unc = np.asarray(self.uncertainty)
        if unc.shape != (t,):
            raise InputError(f"{where}: expected uncertainty of shape ({t},) like frames, got {unc.shape}.")
        if t and (
            unc.dtype == bool
            or not (np.issubdtype(unc.dtype, np.floating) or np.issubdtype(unc.dtype, np.integer))
        ):
            raise InputError(f"{where}: expected real uncertainties, got dtype {unc.dtype}.")
        unc = unc.astype(np.float64)
        if np.isinf(unc).any():
            raise InputError(
                f"{where}: expected finite uncertainties (NaN for unknown), got "
                f"{int(np.isinf(unc).sum())} infinite value(s)."
            )
        eligible = np.asarray(self.eligible)
        if eligible.shape != (t,):
            raise InputError(f"{where}: expected eligible of shape ({t},) like frames, got {eligible.shape}.")
        if t and eligible.dtype != bool:
            raise InputError(f"{where}: expected a bool eligible mask, got dtype {eligible.dtype}.")
        eligible = eligible.astype(bool)
        for name, arr in (("frames", frames), ("uncertainty", unc), ("eligible", eligible)):
            arr = arr.copy()
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "object_id", int(self.object_id))


@dataclass(frozen=True)
class PlannerSettings:
    """How :func:`plan_reviews` chooses frames.

    Attributes:
        kind: ``"runs"`` (onsets of low runs by downstream error mass) or ``"per_frame"``
            (eligible frames by uncertainty, highest first).
        low_quantile: a frame is low when its uncertainty is among the top ``low_quantile``
            fraction of the pool (all finite uncertainties of all tracks), i.e. its
            :func:`rank_percentile` exceeds ``1 - low_quantile``; in (0, 1].
        threshold: when set, a frame is low when its uncertainty is > ``threshold`` instead
            (strict, like "true IoU < 0.5" for ``uncertainty = 1 - IoU``); ``low_quantile``
            is then unused.
        merge_gap: low runs of one track separated by <= ``merge_gap`` non-low (or NaN) frames
            form one run; counted in positions of the track's arrays.
        mass: a low frame's error mass: ``"rank"``, its rank percentile in the pool (0..1], or
            ``"value"``, its raw uncertainty (must then be >= 0, e.g. ``1 - confidence``).
        object_decay: each pick already made on a track multiplies the value of its other runs
            by this; in [0, 1].
        video_decay: the same for each pick already made in the video; in [0, 1].
        skip_after: the skip rule of single-frame picks (the runs planner's fallback and the
            per-frame planner): no pick at frames f with p < f <= p + skip_after for an earlier
            pick p of the same track (frame indices); 0 disables it.

    Raises:
        InputError: a value out of its range.
    """

    kind: Literal["runs", "per_frame"] = "runs"
    low_quantile: float = 0.35
    threshold: float | None = None
    merge_gap: int = 2
    mass: Literal["rank", "value"] = "rank"
    object_decay: float = 0.5
    video_decay: float = 1.0
    skip_after: int = 8

    def __post_init__(self) -> None:
        if self.kind not in PLANNER_KINDS:
            raise InputError(f"PlannerSettings.kind: expected one of {PLANNER_KINDS}, got {self.kind!r}.")
        if self.mass not in MASS_KINDS:
            raise InputError(f"PlannerSettings.mass: expected one of {MASS_KINDS}, got {self.mass!r}.")
        q = self.low_quantile
        if not isinstance(q, numbers.Real) or isinstance(q, bool) or not 0.0 < q <= 1.0:
            raise InputError(f"PlannerSettings.low_quantile: expected a number in (0, 1], got {q!r}.")
        th = self.threshold
        if th is not None and (
            not isinstance(th, numbers.Real) or isinstance(th, bool) or not math.isfinite(th)
        ):
            raise InputError(f"PlannerSettings.threshold: expected None or a finite number, got {th!r}.")
        for name in ("merge_gap", "skip_after"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise InputError(f"PlannerSettings.{name}: expected an int >= 0, got {value!r}.")
        for name in ("object_decay", "video_decay"):
            value = getattr(self, name)
            # decays above 1 would make values grow with picks and break the lazy heap's bound
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise InputError(f"PlannerSettings.{name}: expected a number in [0, 1], got {value!r}.")


@dataclass(frozen=True)
class Pick:
    """One frame-object a reviewer is asked to correct.

    Attributes:
        video_id: the video.
        object_id: the object.
        frame_index: the frame to correct.
        value: the expected-gain proxy it was chosen by: a run's decayed downstream error mass,
            a fallback frame's own mass, or a per-frame pick's uncertainty.
        run_start: first frame index of its low run (single-frame picks: the frame itself).
        run_end: last frame index of its low run (single-frame picks: the frame itself).
        run_length: frames of the track from ``run_start`` to ``run_end`` (single-frame: 1).
        source: ``"run"``, ``"fallback"`` (runs planner, budget left after runs) or
            ``"per_frame"``.
        reason: human-readable, e.g. "onset of a low run of 14 frames (20-33), ...".
    """

    video_id: str
    object_id: int
    frame_index: int
    value: float
    run_start: int
    run_end: int
    run_length: int
    source: Literal["run", "fallback", "per_frame"]
    reason: str


@dataclass(frozen=True)
class _Run:
    track: int  # index into the tracks
    start: int  # position of the first low frame
    end: int  # position of the last low frame (inclusive)
    onset: int  # position of the pick: first eligible frame with a known uncertainty; -1 none
    value: float  # low mass from onset to end


def _check_inputs(
    tracks: Sequence[Track], budget: int, settings: PlannerSettings, per_video: int | Mapping[str, int] | None
) -> None:
    if not _is_int(budget) or budget < 0:
        raise InputError(f"plan_reviews: expected an int budget >= 0, got {budget!r}.")
    if not isinstance(settings, PlannerSettings):
        raise InputError(f"plan_reviews: expected PlannerSettings, got {type(settings).__name__}.")
    if isinstance(tracks, (str, bytes)) or not isinstance(tracks, Sequence):
        raise InputError(f"plan_reviews: expected a sequence of Track, got {type(tracks).__name__}.")
    seen: set[tuple[str, int]] = set()
    for i, track in enumerate(tracks):
        if not isinstance(track, Track):
            raise InputError(f"plan_reviews: expected Track at tracks[{i}], got {type(track).__name__}.")
        key = (track.video_id, track.object_id)
        if key in seen:
            raise InputError(
                f"plan_reviews: expected one track per (video, object), got {key} twice. Merge them."
            )
        seen.add(key)
        if settings.mass == "value" and (track.uncertainty < 0).any():  # NaN compares False
            raise InputError(
                f"plan_reviews: expected uncertainties >= 0 with mass='value', got "
                f"{float(np.nanmin(track.uncertainty))} on {key}. Use mass='rank' or shift them."
            )
    if per_video is None:
        return
    if isinstance(per_video, Mapping):
        for vid, cap in per_video.items():
            if not isinstance(vid, str) or not _is_int(cap) or cap < 0:
                raise InputError(
                    f"plan_reviews: expected per_video caps as str -> int >= 0, got {vid!r}: {cap!r}."
                )
    elif not _is_int(per_video) or per_video < 0:
        raise InputError(
            f"plan_reviews: expected per_video as None, an int >= 0 or a mapping, got {per_video!r}."
        )


def _find_runs(track: Track, index: int, low: np.ndarray, mass: np.ndarray, merge_gap: int) -> list[_Run]:
    """The low runs of one track; ``low`` and ``mass`` are this track's (T,) slices of the pool."""
    positions = np.flatnonzero(low)
    if positions.size == 0:
        return []
    # a new run starts where more than merge_gap non-low frames separate two low frames
    breaks = np.flatnonzero(np.diff(positions) > merge_gap + 1) + 1
    pickable = track.eligible & ~np.isnan(track.uncertainty)
    runs = []
    for group in np.split(positions, breaks):
        start, end = int(group[0]), int(group[-1])
        candidates = np.flatnonzero(pickable[start : end + 1])
        onset = start + int(candidates[0]) if candidates.size else -1
        value = float(mass[onset : end + 1][low[onset : end + 1]].sum()) if onset >= 0 else 0.0
        runs.append(_Run(index, start, end, onset, value))
    return runs


class _Caps:
    """Picks so far per video and track, against the per-video caps and the total budget."""

    def __init__(self, budget: int, per_video: int | Mapping[str, int] | None) -> None:
        self.budget = budget
        self.per_video = per_video
        self.by_video: dict[str, int] = {}
        self.by_track: dict[int, int] = {}
        self.total = 0

    def full(self) -> bool:
        return self.total >= self.budget

    def room(self, video_id: str) -> bool:
        if isinstance(self.per_video, Mapping):
            cap = self.per_video.get(video_id)
        else:
            cap = self.per_video
        return cap is None or self.by_video.get(video_id, 0) < cap

    def add(self, video_id: str, track: int) -> None:
        self.by_video[video_id] = self.by_video.get(video_id, 0) + 1
        self.by_track[track] = self.by_track.get(track, 0) + 1
        self.total += 1


def _plan_runs(
    tracks: Sequence[Track], runs: list[_Run], settings: PlannerSettings, caps: _Caps
) -> tuple[list[Pick], list[_Run]]:
    """Greedy run onsets by decayed value; returns the picks and the runs they came from."""
    od, vd = settings.object_decay, settings.video_decay
    # entries: (-value, track, start, run id, track picks, video picks) -- the last two are the
    # counts the value was decayed with. Decays are <= 1, so a stored value is an upper bound of
    # the current one: an entry popped with current counts is the true maximum (lazy greedy).
    # (track, start) breaks ties by input order, so the plan is deterministic.
    heap = [(-run.value, run.track, run.start, i, 0, 0) for i, run in enumerate(runs) if run.onset >= 0]
    heapq.heapify(heap)
    picks: list[Pick] = []
    picked: list[_Run] = []
    while heap and not caps.full():
        _, t, start, i, k, m = heapq.heappop(heap)
        track, run = tracks[t], runs[i]
        if not caps.room(track.video_id):
            continue  # its video is full; counts only grow, so it never gets room again
        k_now, m_now = caps.by_track.get(t, 0), caps.by_video.get(track.video_id, 0)
        if (k_now, m_now) != (k, m):
            value = run.value * od**k_now * vd**m_now
            heapq.heappush(heap, (-value, t, start, i, k_now, m_now))
            continue
        value = run.value * od**k * vd**m
        f0, f1, fp = (int(track.frames[p]) for p in (run.start, run.end, run.onset))
        length = run.end - run.start + 1
        frames = f"{length} frame" + ("" if length == 1 else "s")
        if run.onset == run.start:
            head = f"onset of a low run of {frames} ({f0}-{f1})"
        else:
            head = (
                f"first eligible frame of a low run of {frames} ({f0}-{f1}; "
                f"{f0}-{fp - 1} not eligible)"
            )
        reason = f"{head}, downstream error mass {run.value:.3g}"
        factor = od**k * vd**m
        if factor != 1.0:  # say why a run ranked lower than its mass, only when it did
            reason += f", x{factor:.3g} after {k} pick(s) on the object and {m} in the video"
        picks.append(Pick(track.video_id, track.object_id, fp, value, f0, f1, length, "run", reason))
        picked.append(run)
        caps.add(track.video_id, t)
    return picks, picked


def _plan_frames(
    tracks: Sequence[Track],
    values: list[np.ndarray],
    settings: PlannerSettings,
    caps: _Caps,
    earlier: list[Pick],
    picked_runs: list[_Run],
    source: Literal["fallback", "per_frame"],
) -> list[Pick]:
    """Single eligible frames by uncertainty (highest first, ties by input order), skipping frames
    inside ``picked_runs`` and within ``skip_after`` frames after an earlier pick of the track."""
    blocked = [np.zeros(track.frames.shape[0], bool) for track in tracks]
    for run in picked_runs:
        blocked[run.track][run.start : run.end + 1] = True
    index = {(track.video_id, track.object_id): t for t, track in enumerate(tracks)}
    picked_frames: list[list[int]] = [[] for _ in tracks]
    for pick in earlier:
        picked_frames[index[(pick.video_id, pick.object_id)]].append(pick.frame_index)

    track_ids = np.concatenate(
        [np.full(track.frames.shape[0], t, np.int64) for t, track in enumerate(tracks)]
    )
    positions = np.concatenate([np.arange(track.frames.shape[0]) for track in tracks])
    unc = np.concatenate([track.uncertainty for track in tracks])
    ok = np.concatenate([track.eligible for track in tracks]) & ~np.isnan(unc)
    track_ids, positions, unc = track_ids[ok], positions[ok], unc[ok]
    order = np.lexsort((positions, track_ids, -unc))  # last key first: uncertainty descending

    picks: list[Pick] = []
    skip = settings.skip_after
    for rank, j in enumerate(order, start=1):
        if caps.full():
            break
        t, p = int(track_ids[j]), int(positions[j])
        track = tracks[t]
        f = int(track.frames[p])
        if blocked[t][p] or not caps.room(track.video_id):
            continue
        # only frames AFTER a pick are skipped: SAM 2 re-propagates forward from a correction, so
        # the frames just after it are fixed by it, while a frame before it is not (and correcting
        # it still fixes the frames up to the later pick)
        if any(q <= f <= q + skip for q in picked_frames[t]):
            continue
        u = float(track.uncertainty[p])
        if source == "per_frame":
            value, reason = u, f"uncertainty rank {rank} ({u:.3g})"
        else:
            value = float(values[t][p])
            reason = (
                f"frame {f}: uncertainty rank {rank} ({u:.3g}) outside picked runs (budget left after runs)"
            )
        picks.append(Pick(track.video_id, track.object_id, f, value, f, f, 1, source, reason))
        picked_frames[t].append(f)
        caps.add(track.video_id, t)
    return picks


def plan_reviews(
    tracks: Sequence[Track],
    budget: int,
    settings: PlannerSettings | None = None,
    per_video: int | Mapping[str, int] | None = None,
) -> list[Pick]:
    """Choose up to ``budget`` frame-objects for human correction, by expected J&F gain.

    ``"runs"``: low runs per track (see :class:`PlannerSettings`); each run yields at most one
    pick, at its onset (its first eligible frame with a known uncertainty; a run without one is
    never picked), valued by the error mass of its low frames from the pick to the run's end.
    Runs are taken greedily by value times ``object_decay ** (picks on the track)`` times
    ``video_decay ** (picks in the video)``, re-evaluated lazily. The skip rule does not apply to
    run picks (the decays spread them). When the runs are exhausted and budget remains, single
    eligible frames follow by uncertainty (highest first), skipping frames inside picked runs and
    frames within ``skip_after`` frames *after* an earlier pick of the same track; frames before
    a pick are not skipped, since a correction re-propagates forward.

    ``"per_frame"``: eligible frames by uncertainty (highest first, ties by input order), with
    the same skip rule when ``skip_after > 0``.

    NaN uncertainties and ineligible frames are never picked. Ties are broken by input order
    (track, then frame), so the same input gives the same plan.

    Args:
        tracks: one :class:`Track` per (video, object).
        budget: the most picks in total, >= 0.
        settings: the planner; None for the defaults.
        per_video: the most picks per video: an int for every video, a mapping video id -> cap
            (videos not in it are uncapped), or None for no caps.

    Returns:
        The picks in pick order.

    Raises:
        InputError: a negative or non-int budget or cap, a non-Track entry, a duplicated
            (video, object), negative uncertainties with ``mass="value"``.
    """
    settings = PlannerSettings() if settings is None else settings
    _check_inputs(tracks, budget, settings, per_video)
    caps = _Caps(budget, per_video)
    if budget == 0 or not tracks:
        return []
    if settings.kind == "per_frame":
        return _plan_frames(tracks, [], settings, caps, [], [], "per_frame")

    pool = np.concatenate([track.uncertainty for track in tracks])
    pct = rank_percentile(pool)
    with np.errstate(invalid="ignore"):  # NaN compares False: unknown is never low
        if settings.threshold is not None:
            low = pool > settings.threshold
        else:
            low = pct > 1.0 - settings.low_quantile + _BOUNDARY_EPS
    mass = pct if settings.mass == "rank" else pool
    bounds = np.cumsum([0] + [track.frames.shape[0] for track in tracks])
    runs: list[_Run] = []
    values: list[np.ndarray] = []
    for t, track in enumerate(tracks):
        sl = slice(int(bounds[t]), int(bounds[t + 1]))
        runs.extend(_find_runs(track, t, low[sl], mass[sl], settings.merge_gap))
        values.append(mass[sl])
    picks, picked = _plan_runs(tracks, runs, settings, caps)
    picks += _plan_frames(tracks, values, settings, caps, picks, picked, "fallback")
    return picks
