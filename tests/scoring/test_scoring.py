import numpy as np
import pytest
import torch

from usam_video.config import PolicyConfig, PolicyRule
from usam_video.errors import ConfigError, HeadsError
from usam_video.heads import HEAD_NAMES, random_heads
from usam_video.score_registry import VIDEO_FEATURES
from usam_video.scoring import FusedHeads, Scorer, ThresholdPolicy, head_features, score_frame, score_names
from usam_video.types import FramePrediction, FrameScores, Status


def prediction(o: int = 3, d: int = 256, seed: int = 0) -> FramePrediction:
    rng = np.random.default_rng(seed)
    chosen = rng.integers(1, 4, size=o)
    cand = rng.random((o, 4), dtype=np.float32)
    return FramePrediction(
        frame_index=5,
        object_ids=tuple(range(1, o + 1)),
        masks=np.zeros((o, 4, 4), bool),
        sam_iou=cand[np.arange(o), chosen],
        candidate_ious=cand,
        chosen_candidate=chosen,
        object_score_logits=np.array([0.0, 2.0, -2.0][:o], np.float32),
        iou_tokens=rng.standard_normal((o, d), dtype=np.float32),
        mask_tokens=rng.standard_normal((o, 4, d), dtype=np.float32),
        is_prompt=np.zeros(o, bool),
        entropy=rng.random(o, dtype=np.float32),
        stability=rng.random(o, dtype=np.float32),
        tracked=np.ones(o, bool),
    )


def test_head_features_use_the_chosen_mask_token() -> None:
    p = prediction()
    f = head_features(p)
    assert f.shape == (3, 512)
    for o in range(3):
        np.testing.assert_array_equal(f[o, :256], p.iou_tokens[o])
        np.testing.assert_array_equal(f[o, 256:], p.mask_tokens[o, p.chosen_candidate[o]])


def test_scores_match_heads_and_gap_shift() -> None:
    p = prediction()
    heads = random_heads(["iou_tiny", "task_gap"], seed=2)
    s = score_frame(p, heads)
    assert (
        s.names
        == ("sam_iou", "object_score", "entropy", "stability", *VIDEO_FEATURES, "iou_tiny", "task_gap")
        == score_names(heads)
    )
    # a prediction without video features stores NaN in their columns
    assert np.isnan(s.values[:, 4 : 4 + len(VIDEO_FEATURES)]).all()
    np.testing.assert_array_equal(s.column("entropy"), p.entropy)
    np.testing.assert_array_equal(s.column("stability"), p.stability)
    np.testing.assert_allclose(s.column("sam_iou"), p.sam_iou)
    np.testing.assert_allclose(
        s.column("object_score"), [0.5, 1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))], rtol=1e-6
    )
    x = torch.from_numpy(head_features(p))
    with torch.no_grad():
        np.testing.assert_allclose(s.column("iou_tiny"), heads.heads["iou_tiny"](x).numpy(), atol=1e-6)
        np.testing.assert_allclose(s.column("task_gap"), heads.heads["task_gap"](x).numpy() - 0.5, atol=1e-6)


def test_no_heads_gives_baselines_only() -> None:
    s = score_frame(prediction(), None)
    assert s.names == ("sam_iou", "object_score", "entropy", "stability", *VIDEO_FEATURES)
    assert s.values.shape == (3, 4 + len(VIDEO_FEATURES))
    assert s.candidate_names == ("sam_iou",) and s.candidate_values.shape == (3, 4, 1)


def test_fused_equals_head_by_head_for_all_nine_heads() -> None:
    heads = random_heads(HEAD_NAMES, seed=7)
    fused = FusedHeads(heads)
    x = torch.randn(37, 512)
    out = fused(x)
    assert out.shape == (9, 37)
    with torch.no_grad():
        for i, name in enumerate(HEAD_NAMES):
            torch.testing.assert_close(out[i], heads.heads[name](x), atol=1e-5, rtol=0)


def test_every_candidate_is_scored_by_the_iou_heads() -> None:
    p = prediction(o=2)
    heads = random_heads(["iou_tiny", "iou_large", "model_gap"], seed=1)
    s = Scorer(heads)(p)
    assert s.candidate_names == ("sam_iou", "iou_tiny", "iou_large")
    assert s.candidate_values.shape == (2, 4, 3)
    np.testing.assert_array_equal(s.candidate_values[:, :, 0], p.candidate_ious)
    with torch.no_grad():
        for o in range(2):
            for k in range(4):
                x = torch.from_numpy(np.concatenate([p.iou_tokens[o], p.mask_tokens[o, k]]))[None]
                expected = heads.heads["iou_large"](x).item()
                assert s.candidate_values[o, k, 2] == pytest.approx(expected, abs=1e-5)
        # the chosen candidate's column equals the per-object score
        np.testing.assert_allclose(
            s.candidate_values[np.arange(2), p.chosen_candidate, 1], s.column("iou_tiny"), atol=1e-6
        )


def test_untracked_objects_score_nan() -> None:
    p = prediction(o=2)
    tracked = np.array([True, False])
    q = FramePrediction(**{**p.__dict__, "tracked": tracked})
    s = Scorer(random_heads(["iou_tiny"]))(q)
    head = s.names.index("iou_tiny")
    assert np.isfinite(s.values[0, head]) and np.isnan(s.values[1, head])
    assert np.isnan(s.candidate_values[1]).all()


def test_token_width_mismatch() -> None:
    with pytest.raises(HeadsError, match="expected 256-d tokens, the model gives 64-d"):
        score_frame(prediction(d=64), random_heads(["iou_tiny"]))


def scores(values: list[list[float]], names=("sam_iou", "task_gap")) -> FrameScores:
    v = np.array(values, np.float32)
    return FrameScores(0, tuple(range(1, len(v) + 1)), tuple(names), v)


POLICY = PolicyConfig(
    rules=[
        PolicyRule(name="swap", score="task_gap", op=">", threshold=0.1, route="refine"),
        PolicyRule(name="low", score="sam_iou", op="<=", threshold=0.5, route="human"),
    ]
)


@pytest.mark.parametrize(
    ("row", "status", "reason"),
    [
        ([0.9, 0.0], Status.ACCEPTED, ""),
        ([0.9, 0.2], Status.QUEUED_REFINE, "swap"),
        ([0.5, 0.0], Status.QUEUED_HUMAN, "low"),  # <= is inclusive
        ([0.3, 0.3], Status.QUEUED_REFINE, "swap"),  # the first matching rule wins
        ([0.9, 0.1], Status.ACCEPTED, ""),  # > is strict
    ],
)
def test_policy_rules(row: list[float], status: Status, reason: str) -> None:
    policy = ThresholdPolicy(POLICY)
    st, rs = policy.decide(scores([row]))
    assert policy.decision(int(st[0]), int(rs[0])) == policy.decision(
        status, policy.reasons.index(reason) + 1 if reason else 0
    )
    assert Status(int(st[0])) is status


def test_policy_vectorised_over_objects() -> None:
    st, rs = ThresholdPolicy(POLICY).decide(scores([[0.9, 0.0], [0.9, 0.2], [0.1, 0.0]]))
    assert st.tolist() == [Status.ACCEPTED, Status.QUEUED_REFINE, Status.QUEUED_HUMAN]
    assert rs.tolist() == [0, 1, 2]


def test_policy_check_names_missing_score() -> None:
    with pytest.raises(ConfigError, match="'task_gap'"):
        ThresholdPolicy(POLICY).check(["sam_iou", "object_score"])
