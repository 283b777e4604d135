"""Review planner: onsets of low runs by downstream error mass, spread over objects and videos,
per-video caps, the skip-rule fallback and the per-frame ordering, on constructed score tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import pytest

from usam_video.errors import InputError
from usam_video.review.planner import Pick, PlannerSettings, Track, plan_reviews, rank_percentile

V = TypeVar("V")
LO, HI = 0.1, 0.9  # uncertainties of a good and a bad frame
# absolute threshold and raw-uncertainty mass: run values are easy to compute by hand
ABS = PlannerSettings(threshold=0.5, mass="value")


def track(
    unc: Sequence[float],
    video: str = "v",
    obj: int = 1,
    eligible: Sequence[bool] | None = None,
    first_frame: int = 0,
) -> Track:
    n = len(unc)
    return Track(
        video_id=video,
        object_id=obj,
        frames=np.arange(first_frame, first_frame + n, dtype=np.int64),
        uncertainty=np.asarray(unc, dtype=np.float64),
        eligible=np.ones(n, bool) if eligible is None else np.asarray(eligible, bool),
    )


def seq(*parts: tuple[V, int]) -> list[V]:
    """A sequence (uncertainties, eligibility) from (value, count) parts."""
    return [value for value, count in parts for _ in range(count)]


def frames_of(picks: list[Pick]) -> list[int]:
    return [p.frame_index for p in picks]


# --- rank percentile -----------------------------------------------------------------------------


def test_rank_percentile_averages_ties_keeps_nan_and_gives_the_highest_one() -> None:
    out = rank_percentile(np.array([3.0, 1.0, 2.0, 2.0, np.nan]))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out[:4], [1.0, 0.25, 0.625, 0.625])
    assert np.isnan(out[4])
    assert np.isnan(rank_percentile(np.array([np.nan, np.nan]))).all()
    assert rank_percentile(np.array([], np.float64)).shape == (0,)


# --- onsets and runs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unc", "settings", "first_frame", "expected"),
    [
        # (pick frame, run_start, run_end, run_length)
        (seq((LO, 5), (HI, 10), (LO, 5)), ABS, 0, (5, 5, 14, 10)),
        (seq((LO, 5), (HI, 10), (LO, 5)), ABS, 100, (105, 105, 114, 10)),
        # the worst frame is late in the run: the onset is still picked
        (seq((LO, 5), (0.6, 3), (0.99, 4), (LO, 5)), ABS, 0, (5, 5, 11, 7)),
        # quantile mode: the 7 highest of 20 distinct values (q=0.35) form the run
        (
            [0.01 * i for i in range(8)] + [0.9 + 0.01 * i for i in range(7)] + [0.02 * i for i in range(5)],
            PlannerSettings(),
            0,
            (8, 8, 14, 7),
        ),
        # rank mass, threshold mode
        (seq((LO, 3), (HI, 4), (LO, 3)), PlannerSettings(threshold=0.5), 0, (3, 3, 6, 4)),
    ],
)
def test_it_picks_the_onset_not_later_frames_of_the_run(
    unc: list[float], settings: PlannerSettings, first_frame: int, expected: tuple[int, int, int, int]
) -> None:
    (pick,) = plan_reviews([track(unc, first_frame=first_frame)], 1, settings)
    assert (pick.frame_index, pick.run_start, pick.run_end, pick.run_length) == expected
    assert pick.source == "run"


@pytest.mark.parametrize("budget", [1, 2, 5, 30])
@pytest.mark.parametrize("kind_of_table", ["all_low", "run_and_rest"])
def test_it_never_picks_twice_within_one_run(budget: int, kind_of_table: str) -> None:
    if kind_of_table == "all_low":
        unc = seq((HI, 20))
    else:
        unc = seq((HI, 10), (0.3, 10))
    picks = plan_reviews([track(unc)], budget, PlannerSettings(threshold=0.5, skip_after=0))
    in_run = [p for p in picks if 0 <= p.frame_index <= 9]
    assert len(in_run) == 1 and in_run[0].frame_index == 0
    expected = 1 if kind_of_table == "all_low" else min(budget, 11)
    assert len(picks) == expected
    assert len(set(frames_of(picks))) == len(picks)


def test_runs_are_picked_by_downstream_mass() -> None:
    tracks = [
        track(seq((LO, 2), (HI, 3), (LO, 2)), obj=1),  # mass 2.7
        track(seq((LO, 2), (HI, 6), (LO, 2)), obj=2),  # mass 5.4
        track(seq((LO, 2), (HI, 4), (LO, 2)), obj=3),  # mass 3.6
    ]
    picks = plan_reviews(tracks, 3, ABS)
    assert [p.object_id for p in picks] == [2, 3, 1]
    np.testing.assert_allclose([p.value for p in picks], [5.4, 3.6, 2.7])


# --- spreading the budget ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("object_decay", "expected_objects"),
    [(0.5, [1, 2]), (1.0, [1, 1]), (0.9, [1, 1]), (0.0, [1, 2])],
)
def test_the_budget_spreads_across_objects(object_decay: float, expected_objects: list[int]) -> None:
    tracks = [
        track(seq((HI, 10), (LO, 5), (HI, 10)), obj=1),  # two runs of mass 9
        track(seq((LO, 5), (HI, 8), (LO, 12)), obj=2),  # one run of mass 7.2
    ]
    settings = PlannerSettings(threshold=0.5, mass="value", object_decay=object_decay)
    picks = plan_reviews(tracks, 2, settings)
    assert [p.object_id for p in picks] == expected_objects


def test_the_default_decay_gives_one_pick_per_object_even_with_a_larger_mass() -> None:
    tracks = [
        track(seq((HI, 10), (LO, 5), (HI, 10)), obj=1),
        track(seq((LO, 5), (HI, 8), (LO, 12)), obj=2),
    ]
    picks = plan_reviews(tracks, 2, ABS)
    assert sorted(p.object_id for p in picks) == [1, 2]
    assert frames_of(picks) == [0, 5]


@pytest.mark.parametrize(("video_decay", "expected_videos"), [(1.0, ["a", "a"]), (0.5, ["a", "b"])])
def test_the_budget_spreads_across_videos_with_video_decay(
    video_decay: float, expected_videos: list[str]
) -> None:
    tracks = [
        track(seq((HI, 10), (LO, 5)), video="a", obj=1),  # mass 9
        track(seq((HI, 10), (LO, 5)), video="a", obj=2),  # mass 9
        track(seq((HI, 8), (LO, 7)), video="b", obj=1),  # mass 7.2
    ]
    settings = PlannerSettings(threshold=0.5, mass="value", video_decay=video_decay)
    picks = plan_reviews(tracks, 2, settings)
    assert [p.video_id for p in picks] == expected_videos


# --- caps and budget -----------------------------------------------------------------------------


def _two_videos() -> list[Track]:
    return [
        track(seq((HI, 6), (LO, 14)), video="a", obj=1),
        track(seq((LO, 7), (HI, 5), (LO, 8)), video="a", obj=2),
        track(seq((HI, 4), (LO, 16)), video="b", obj=1),
        track(seq((LO, 9), (HI, 3), (LO, 8)), video="b", obj=2),
    ]


@pytest.mark.parametrize(
    ("budget", "per_video", "kind", "expected_counts"),
    [
        (0, None, "runs", {}),
        (0, None, "per_frame", {}),
        (3, None, "runs", {"a": 2, "b": 1}),
        (10, 1, "runs", {"a": 1, "b": 1}),
        (10, 3, "runs", {"a": 3, "b": 3}),  # one run each, then the fallback, still capped
        (10, {"a": 0}, "runs", {"b": 10}),
        (10, {"a": 2, "b": 1}, "runs", {"a": 2, "b": 1}),
        (10, {"b": 1}, "runs", {"a": 9, "b": 1}),  # videos not in the mapping are uncapped
        (10, 2, "per_frame", {"a": 2, "b": 2}),
        (5, {"b": 0}, "per_frame", {"a": 5}),
    ],
)
def test_it_respects_per_video_caps_and_the_total_budget(
    budget: int, per_video: int | dict[str, int] | None, kind: str, expected_counts: dict[str, int]
) -> None:
    settings = PlannerSettings(kind=kind, threshold=0.5, skip_after=0)  # type: ignore[arg-type]
    picks = plan_reviews(_two_videos(), budget, settings, per_video=per_video)
    counts: dict[str, int] = {}
    for pick in picks:
        counts[pick.video_id] = counts.get(pick.video_id, 0) + 1
    assert counts == expected_counts
    assert len(picks) <= budget
    assert len({(p.video_id, p.object_id, p.frame_index) for p in picks}) == len(picks)


# --- fallback and per-frame ----------------------------------------------------------------------


# a run at frames 0-4, then uncertainties below the threshold falling (or rising) with time
FALLING = seq((HI, 5)) + [0.45 - 0.01 * i for i in range(15)]
RISING = seq((HI, 5)) + [0.2 + 0.01 * i for i in range(15)]


@pytest.mark.parametrize(
    ("unc", "skip_after", "budget", "expected"),
    [
        (FALLING, 3, 4, [0, 5, 9, 13]),
        (FALLING, 0, 4, [0, 5, 6, 7]),
        (FALLING, 8, 3, [0, 9, 18]),  # 5-8 lie within 8 frames after the pick at 0, 10-17 after 9
        # only frames AFTER a pick are skipped: re-propagation runs forward from a correction
        (RISING, 8, 3, [0, 19, 18]),
    ],
)
def test_the_fallback_fills_the_budget_with_the_skip_rule(
    unc: list[float], skip_after: int, budget: int, expected: list[int]
) -> None:
    settings = PlannerSettings(threshold=0.5, skip_after=skip_after)
    picks = plan_reviews([track(unc)], budget, settings)
    assert frames_of(picks) == expected
    assert [p.source for p in picks] == ["run"] + ["fallback"] * (budget - 1)
    for pick in picks[1:]:
        assert (pick.run_start, pick.run_end, pick.run_length) == (pick.frame_index, pick.frame_index, 1)
        assert "budget left after runs" in pick.reason


def _random_tracks(seed: int) -> list[Track]:
    rng = np.random.default_rng(seed)
    tracks = []
    for v in range(3):
        for o in range(1, 3):
            n = int(rng.integers(5, 30))
            unc = np.round(rng.random(n), 1)  # coarse: many ties
            unc[rng.random(n) < 0.1] = np.nan
            tracks.append(
                Track(
                    video_id=f"v{v}",
                    object_id=o,
                    frames=np.sort(rng.choice(200, n, replace=False)).astype(np.int64),
                    uncertainty=unc,
                    eligible=rng.random(n) < 0.8,
                )
            )
    return tracks


@pytest.mark.parametrize("seed", range(5))
def test_per_frame_equals_plain_descending_order_without_the_skip_rule(seed: int) -> None:
    tracks = _random_tracks(seed)
    rows = [
        (float(t.uncertainty[i]), t.video_id, t.object_id, int(t.frames[i]))
        for t in tracks
        for i in range(t.frames.shape[0])
        if t.eligible[i] and not np.isnan(t.uncertainty[i])
    ]
    expected = [r[1:] for r in sorted(rows, key=lambda r: -r[0])]  # sorted() is stable: input order
    picks = plan_reviews(tracks, 25, PlannerSettings(kind="per_frame", skip_after=0))
    assert [(p.video_id, p.object_id, p.frame_index) for p in picks] == expected[:25]
    assert [p.reason for p in picks[:2]] == [
        f"uncertainty rank 1 ({picks[0].value:.3g})",
        f"uncertainty rank 2 ({picks[1].value:.3g})",
    ]


@pytest.mark.parametrize("skip_after", [1, 4, 8])
@pytest.mark.parametrize("seed", range(3))
def test_per_frame_with_the_skip_rule_skips_frames_after_a_pick(seed: int, skip_after: int) -> None:
    tracks = _random_tracks(seed)
    picks = plan_reviews(tracks, 1000, PlannerSettings(kind="per_frame", skip_after=skip_after))
    by_track: dict[tuple[str, int], list[int]] = {}
    for pick in picks:
        earlier = by_track.setdefault((pick.video_id, pick.object_id), [])
        assert not any(q < pick.frame_index <= q + skip_after for q in earlier)
        earlier.append(pick.frame_index)
    values = [p.value for p in picks]
    assert values == sorted(values, reverse=True)
    # greedy: every eligible known frame left out lies within skip_after after a pick of its track
    for t in tracks:
        chosen = by_track.get((t.video_id, t.object_id), [])
        for i in range(t.frames.shape[0]):
            f = int(t.frames[i])
            if t.eligible[i] and not np.isnan(t.uncertainty[i]) and f not in chosen:
                assert any(q < f <= q + skip_after for q in chosen)


# --- NaN and ineligible frames -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["runs", "per_frame"])
@pytest.mark.parametrize("seed", range(4))
def test_nan_and_ineligible_frames_are_never_picked(kind: str, seed: int) -> None:
    tracks = _random_tracks(seed)
    lookup = {
        (t.video_id, t.object_id, int(f)): (bool(e), float(u))
        for t in tracks
        for f, e, u in zip(t.frames, t.eligible, t.uncertainty, strict=True)
    }
    settings = PlannerSettings(kind=kind, skip_after=0)  # type: ignore[arg-type]
    picks = plan_reviews(tracks, 1000, settings)
    assert picks
    for pick in picks:
        eligible, unc = lookup[(pick.video_id, pick.object_id, pick.frame_index)]
        assert eligible and not np.isnan(unc)
    n_pickable = sum(e and not np.isnan(u) for e, u in lookup.values())
    if kind == "per_frame":  # a large budget with skip_after=0 takes every pickable frame
        assert len(picks) == n_pickable
    else:  # ... less the later frames of picked runs
        assert len(picks) <= n_pickable


@pytest.mark.parametrize(
    ("eligible", "expected_frame", "expected_value"),
    [
        (seq((True, 5), (True, 10)), 5, 10 * HI),
        (seq((True, 5), (False, 3), (True, 7)), 8, 7 * HI),  # downstream mass from the pick
        (seq((False, 9), (True, 1), (False, 5)), 9, 6 * HI),
    ],
)
def test_a_run_with_an_ineligible_onset_is_picked_at_its_first_eligible_frame(
    eligible: list[bool], expected_frame: int, expected_value: float
) -> None:
    (pick,) = plan_reviews([track(seq((LO, 5), (HI, 10)), eligible=eligible)], 1, ABS)
    assert (pick.frame_index, pick.run_start, pick.run_end) == (expected_frame, 5, 14)
    assert pick.value == pytest.approx(expected_value)
    if expected_frame != 5:
        assert pick.reason.startswith("first eligible frame of a low run of 10 frames (5-14")


def test_a_run_without_eligible_frames_is_not_picked() -> None:
    tracks = [
        track(seq((LO, 5), (HI, 10)), obj=1, eligible=seq((True, 5), (False, 10))),
        track(seq((LO, 5), (0.7, 2), (LO, 3)), obj=2),
    ]
    picks = plan_reviews(tracks, 1, ABS)
    assert [(p.object_id, p.frame_index, p.source) for p in picks] == [(2, 5, "run")]


def test_nan_frames_are_not_low_and_split_runs_beyond_the_merge_gap() -> None:
    unc = seq((HI, 3), (np.nan, 4), (HI, 3))
    picks = plan_reviews([track(unc)], 5, PlannerSettings(threshold=0.5, merge_gap=2, object_decay=1.0))
    assert frames_of(picks) == [0, 7]
    unc = seq((HI, 3), (np.nan, 2), (HI, 3))  # merged: the NaN frames are gap frames of the run
    (pick,) = plan_reviews([track(unc)], 5, PlannerSettings(threshold=0.5, merge_gap=2))
    assert (pick.frame_index, pick.run_start, pick.run_end, pick.run_length) == (0, 0, 7, 8)


# --- merge gap, threshold, quantile --------------------------------------------------------------


@pytest.mark.parametrize(
    ("gap", "merge_gap", "expected_runs"),
    [
        (1, 0, [(0, 3), (5, 8)]),
        (1, 1, [(0, 8)]),
        (2, 2, [(0, 9)]),
        (3, 2, [(0, 3), (7, 10)]),
        (3, 3, [(0, 10)]),
    ],
)
def test_merge_gap_merges_runs(gap: int, merge_gap: int, expected_runs: list[tuple[int, int]]) -> None:
    unc = seq((HI, 4), (LO, gap), (HI, 4), (LO, 3))
    settings = PlannerSettings(threshold=0.5, merge_gap=merge_gap, object_decay=1.0, skip_after=0)
    picks = [p for p in plan_reviews([track(unc)], 10, settings) if p.source == "run"]
    assert sorted((p.run_start, p.run_end) for p in picks) == expected_runs
    assert [p.frame_index for p in picks] == [p.run_start for p in picks]


@pytest.mark.parametrize(
    ("threshold", "expected_run"),
    [
        (0.5, (2, 6)),
        (0.55, (2, 6)),  # strict: 0.55 itself is not low, but it is a gap frame of the run
        (0.6, (3, 6)),  # 0.8 | 0.55 | 0.9 0.7: one gap frame, merged
        (0.75, (3, 5)),
        (0.85, (5, 5)),
        (0.95, None),
    ],
)
def test_threshold_mode(threshold: float, expected_run: tuple[int, int] | None) -> None:
    unc = [0.1, 0.2, 0.6, 0.8, 0.55, 0.9, 0.7, 0.3, 0.1, 0.2]
    settings = PlannerSettings(threshold=threshold, merge_gap=2, skip_after=0)
    picks = [p for p in plan_reviews([track(unc)], 3, settings) if p.source == "run"]
    if expected_run is None:
        assert picks == []
    else:
        assert [(p.run_start, p.run_end) for p in picks] == [expected_run]


@pytest.mark.parametrize(("quantile", "expected_length"), [(0.1, 2), (0.35, 7), (0.5, 10), (1.0, 20)])
def test_the_quantile_takes_the_top_fraction_of_the_pool(quantile: float, expected_length: int) -> None:
    # 20 distinct values rising over two tracks; the top ones form a run at the end of track 2
    tracks = [
        track([0.01 * i for i in range(10)], obj=1),
        track([0.1 + 0.01 * i for i in range(10)], obj=2),
    ]
    settings = PlannerSettings(low_quantile=quantile, merge_gap=0, skip_after=0)
    runs = [p for p in plan_reviews(tracks, 1, settings) if p.source == "run"]
    assert sum(p.run_length for p in runs) == min(expected_length, 10)
    if quantile == 1.0:  # every frame is low: one run per track
        runs = [p for p in plan_reviews(tracks, 5, settings) if p.source == "run"]
        assert sorted((p.object_id, p.run_length) for p in runs) == [(1, 10), (2, 10)]


# --- reasons and determinism ---------------------------------------------------------------------


def test_reasons_name_the_run_length_and_span() -> None:
    tracks = [
        track(seq((LO, 20), (HI, 14), (LO, 5), (HI, 4), (LO, 10)), obj=1),
        track(seq((LO, 5), (HI, 3)), obj=2, first_frame=40),
    ]
    picks = plan_reviews(tracks, 4, PlannerSettings(threshold=0.5, skip_after=0))
    assert picks[0].reason.startswith("onset of a low run of 14 frames (20-33), downstream error mass")
    assert picks[1].reason.startswith("onset of a low run of 3 frames (45-47)")
    assert picks[2].reason.startswith("onset of a low run of 4 frames (39-42)")
    assert "x0.5 after 1 pick(s) on the object" in picks[2].reason
    assert picks[3].source == "fallback" and picks[3].reason.startswith("frame ")


def test_the_same_input_gives_the_same_plan() -> None:
    for kind in ("runs", "per_frame"):
        settings = PlannerSettings(kind=kind)  # type: ignore[arg-type]
        first = plan_reviews(_random_tracks(7), 20, settings, per_video=5)
        assert first == plan_reviews(_random_tracks(7), 20, settings, per_video=5)


def test_empty_inputs() -> None:
    assert plan_reviews([], 5) == []
    assert plan_reviews([track([])], 5) == []
    assert plan_reviews([track([np.nan, np.nan])], 5) == []


# --- bad input -----------------------------------------------------------------------------------


def _t(**kwargs: object) -> Callable[[], object]:
    base: dict[str, object] = {
        "video_id": "v",
        "object_id": 1,
        "frames": np.arange(3),
        "uncertainty": np.zeros(3),
        "eligible": np.ones(3, bool),
    }
    base.update(kwargs)
    return lambda: Track(**base)  # type: ignore[arg-type]


def _plan(*args: object, **kwargs: object) -> Callable[[], object]:
    return lambda: plan_reviews(*args, **kwargs)  # type: ignore[arg-type]


GOOD = [track([0.1, 0.9, 0.2])]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_plan(GOOD, -1), id="negative budget"),
        pytest.param(_plan(GOOD, 1.5), id="float budget"),
        pytest.param(_plan(GOOD, True), id="bool budget"),
        pytest.param(_plan(GOOD, 1, per_video=-1), id="negative cap"),
        pytest.param(_plan(GOOD, 1, per_video={"v": -1}), id="negative mapped cap"),
        pytest.param(_plan(GOOD, 1, per_video="v"), id="string cap"),
        pytest.param(_plan([GOOD[0], GOOD[0]], 1), id="duplicate track"),
        pytest.param(_plan([object()], 1), id="not a track"),
        pytest.param(_plan(GOOD, 1, settings="runs"), id="settings not PlannerSettings"),
        pytest.param(_plan([track([-0.1, 0.5])], 1, PlannerSettings(mass="value")), id="negative value mass"),
        pytest.param(lambda: PlannerSettings(low_quantile=0.0), id="quantile 0"),
        pytest.param(lambda: PlannerSettings(low_quantile=1.5), id="quantile above 1"),
        pytest.param(lambda: PlannerSettings(threshold=float("nan")), id="nan threshold"),
        pytest.param(lambda: PlannerSettings(merge_gap=-1), id="negative merge gap"),
        pytest.param(lambda: PlannerSettings(skip_after=2.5), id="float skip"),  # type: ignore[arg-type]
        pytest.param(lambda: PlannerSettings(object_decay=1.5), id="decay above 1"),
        pytest.param(lambda: PlannerSettings(video_decay=-0.1), id="negative decay"),
        pytest.param(lambda: PlannerSettings(kind="lowest"), id="unknown kind"),  # type: ignore[arg-type]
        pytest.param(lambda: PlannerSettings(mass="sum"), id="unknown mass"),  # type: ignore[arg-type]
        pytest.param(_t(frames=np.arange(3).reshape(1, 3)), id="2-D frames"),
        pytest.param(_t(frames=np.array([0, 2, 1])), id="unsorted frames"),
        pytest.param(_t(frames=np.array([0, 1, 1])), id="repeated frames"),
        pytest.param(_t(frames=np.array([-1, 0, 1])), id="negative frames"),
        pytest.param(_t(frames=np.array([0.0, 1.0, 2.0])), id="float frames"),
        pytest.param(_t(uncertainty=np.zeros(4)), id="uncertainty shape"),
        pytest.param(_t(uncertainty=np.array([0.0, np.inf, 0.0])), id="infinite uncertainty"),
        pytest.param(_t(uncertainty=np.array(["a", "b", "c"])), id="string uncertainty"),
        pytest.param(_t(eligible=np.ones(3, np.int64)), id="int eligible"),
        pytest.param(_t(eligible=np.ones(2, bool)), id="eligible shape"),
        pytest.param(_t(video_id=""), id="empty video id"),
        pytest.param(_t(object_id="1"), id="string object id"),
        pytest.param(lambda: rank_percentile(np.array(["a"])), id="rank of strings"),
    ],
)
def test_bad_input_raises_input_error(make: Callable[[], object]) -> None:
    with pytest.raises(InputError, match="expected"):
        make()
