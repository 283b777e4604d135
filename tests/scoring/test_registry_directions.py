"""Every consumer of scores reads their direction from the score registry: the human budget, the
policy's candidate score, evaluate's ranking, the heads report and the overlays agree with it, and
an unknown name is a ConfigError everywhere."""

from types import SimpleNamespace

import numpy as np
import pytest

from tests.budget_helpers import budget_keep
from usam_video.config import HumanBudget, PolicyConfig, PolicyRule
from usam_video.errors import ConfigError
from usam_video.evaluation.overlay import colour_scale
from usam_video.evaluation.protocols import RankingItems, rank_items, score_direction
from usam_video.heads import HeadInputs, random_heads
from usam_video.pipeline.train_heads import _ranking
from usam_video.score_registry import direction_of, score_info, to_uncertainty
from usam_video.scoring import Scorer, ThresholdPolicy

DIRECTIONS = {
    "sam_iou": "confidence",
    "object_score": "confidence",
    "stability": "confidence",
    "iou_tiny": "confidence",
    "iou_micro": "confidence",
    "iou_video": "confidence",
    "entropy": "uncertainty",
    "model_gap": "uncertainty",
    "prompt_gap": "uncertainty",
    "task_gap": "uncertainty",
    "lost_video": "uncertainty",
}
BASE = np.linspace(0.05, 0.95, 19)  # true IoU of 19 masks, the worst first




def informative(name: str) -> np.ndarray:
    """A score that orders the masks perfectly, in its own registry direction."""
    info = score_info(name)
    if info.direction == "confidence":
        return BASE.copy()
    return (1.0 - BASE) + info.shift  # an uncertainty (a gap stored shifted by -0.5)


@pytest.mark.parametrize(("name", "direction"), sorted(DIRECTIONS.items()))
def test_registry_directions(name: str, direction: str) -> None:
    assert direction_of(name) == direction
    assert score_direction(name) == direction  # evaluate's wrapper
    flip, low, high, label = colour_scale(name)  # overlays: red always means doubtful
    assert flip == (direction == "uncertainty")
    assert (low, high) == ((-0.5, 0.5) if name.endswith("_gap") else (0.0, 1.0))
    assert ("less certain" in label) == (direction == "uncertainty")


def test_features_have_no_direction() -> None:
    assert score_direction("prev_iou") is None and direction_of("prev_iou") == "feature"
    with pytest.raises(ConfigError, match="video feature"):
        to_uncertainty("prev_iou", np.zeros(2))
    assert colour_scale("area_prev_ratio")[1:] == (0.0, 1.0, "video feature")  # unbounded: [0, 1]


@pytest.mark.parametrize("name", ["sam_iou", "entropy", "task_gap", "iou_tiny", "lost_video"])
def test_human_budget_keeps_the_registrys_most_uncertain(name: str) -> None:
    values = informative(name)[::-1].copy()  # the worst mask is now last
    keep = budget_keep(values, HumanBudget(max_per_video=3, priority=name), total_frames=100)
    assert keep.tolist() == [False] * 16 + [True] * 3
    # an explicit 'ascending' (configs written before the registry) still wins
    flipped = HumanBudget(max_per_video=3, priority=name, ascending=direction_of(name) != "confidence")
    assert budget_keep(values, flipped, total_frames=100).tolist() == [True] * 3 + [False] * 16


def test_human_budget_priority_without_direction() -> None:
    for priority, match in (("mystery", "unknown one"), ("prev_iou", "video feature")):
        with pytest.raises(ConfigError, match=match):
            budget_keep(np.zeros(3), HumanBudget(max_per_video=1, priority=priority), total_frames=3)
        policy = ThresholdPolicy(PolicyConfig(human_budget=HumanBudget(priority=priority)))
        with pytest.raises(ConfigError, match=match):
            policy.check(["sam_iou", priority])
    # with an explicit direction a feature may order the queue
    explicit = HumanBudget(max_per_video=1, priority="prev_iou", ascending=True)
    assert budget_keep(np.array([0.5, 0.1, 0.9]), explicit, total_frames=3).tolist() == [False, True, False]


def test_evaluate_ranks_each_score_in_its_registry_direction() -> None:
    names = (*DIRECTIONS, "prev_iou")
    rows = np.stack([informative(n) for n in DIRECTIONS] + [BASE], axis=1).astype(np.float32)
    items = RankingItems(base_iou=list(BASE), scores=list(rows), score_names=names)
    report, _, directions, dropped = rank_items(items, None, np.linspace(0.0, 0.5, 11))
    assert dropped == 0 and items.unranked == {"prev_iou": "a video feature: no direction of its own"}
    assert directions == DIRECTIONS
    for name in DIRECTIONS:  # each informative score ranks like the oracle, worst first
        assert report.curve(name).relative_auc == pytest.approx(1.0), name


def _head_ranking(name: str, pred: np.ndarray, target: np.ndarray) -> float:
    n = len(BASE)
    fit = SimpleNamespace(val_rows=np.arange(n), val_pred=pred, val_target=target)
    samples = SimpleNamespace(targets={"iou_micro": BASE.astype(np.float32)}, sam_iou=BASE.astype(np.float32))
    config = SimpleNamespace(models=[SimpleNamespace(label="micro")])
    return _ranking(name, fit, samples, config).relative_auc  # type: ignore[arg-type]


def test_heads_report_ranks_each_head_in_its_registry_direction() -> None:
    gain = 1.0 - BASE  # what the refinement a gap head predicts adds
    # an IoU head lowest-first, a gap head highest-first, the lost-track head highest-first
    assert _head_ranking("iou_micro", BASE, BASE) == pytest.approx(1.0)
    assert _head_ranking("task_gap", gain, gain) == pytest.approx(1.0)
    assert _head_ranking("lost_video", (BASE < 0.3).astype(np.float64), (BASE < 0.3).astype(np.float64)) > 0.5
    # the opposite orders lose against the oracle: the direction really decides
    assert _head_ranking("iou_micro", -BASE, BASE) < 0.5
    assert _head_ranking("task_gap", -gain, gain) < 0.5


def test_default_candidate_score_is_the_first_per_candidate_head() -> None:
    policy = ThresholdPolicy(
        PolicyConfig(rules=[PolicyRule(name="swap", score="task_gap", op=">", threshold=0.1, route="task")])
    )
    scorer = Scorer(random_heads(["iou_video", "task_gap", "iou_large"]))
    # iou_video describes the tracked mask only (not per candidate); task_gap is not per candidate
    assert scorer.candidate_names == ("sam_iou", "iou_large")
    assert policy.candidate_score(scorer.candidate_names) == "iou_large"
    assert policy.candidate_score(("sam_iou",)) == "sam_iou"
    policy.check(scorer.names, scorer.candidate_names)


def test_unknown_score_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"score 'mystery_head': expected a known score name"):
        Scorer(random_heads(["iou_tiny", "mystery_head"]))
    with pytest.raises(ConfigError, match="'mystery'"):
        colour_scale("mystery")
    assert score_direction("mystery") is None  # evaluate leaves old stores' columns unranked


def test_video_heads_stay_out_of_the_fused_token_heads() -> None:
    from usam_video.errors import HeadsError
    from usam_video.scoring import FusedHeads

    inputs = {"lost_video": HeadInputs(("prev_iou",), (0.0,), (1.0,))}
    heads = random_heads(["iou_tiny", "lost_video", "task_gap"], inputs=inputs)
    assert heads.token_head_names == ("iou_tiny", "task_gap") and heads.video_head_names == ("lost_video",)
    # only the token heads share the stacked weights (a video head's first layer is wider)
    assert Scorer(heads)._fused.names == ("iou_tiny", "task_gap")
    with pytest.raises(HeadsError, match=r"extra inputs \['lost_video'\]"):
        FusedHeads(heads, names=["iou_tiny", "lost_video"])
