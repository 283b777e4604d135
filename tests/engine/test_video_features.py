"""Video features for every object on every frame (real SAM 2 architecture, small config), and the
session's autocast that never encloses the consumer."""

from pathlib import Path

import numpy as np
import pytest
import torch

from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.datasets.synthetic import SyntheticVideoSpec, write_davis_dataset
from usam_video.engine import PropagationSession
from usam_video.engine.features import VideoFeatureTracker
from usam_video.score_registry import VIDEO_FEATURES
from usam_video.types import ObjectPrompt

F = {name: i for i, name in enumerate(VIDEO_FEATURES)}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vf")
    spec = SyntheticVideoSpec(name="vf", num_frames=14, height=64, width=80, num_objects=2, seed=7)
    write_davis_dataset(root, [spec])
    return root


@pytest.fixture(scope="module")
def late_records(small_model, video: Path):
    """Object a from frame 0, object b entering on frame 6 (mask prompt)."""
    ds = open_dataset(DatasetConfig(name="vf", root=video))
    a, b = ds.prompts("vf")
    late_b = ObjectPrompt(b.object_id, 6, mask=ds.ground_truth("vf", 6).mask_of(b.object_id))
    session = PropagationSession(small_model, ds.frames("vf"))
    session.add_prompt(a)
    session.add_prompt(late_b)
    return list(session.propagate())


def test_features_for_every_object_on_every_frame(late_records) -> None:
    assert len(late_records) == 14
    for r in late_records:
        assert r.video_features is not None
        assert r.video_features.shape == (2, len(VIDEO_FEATURES)) and r.video_features.dtype == np.float32
        # tracked objects have finite features, objects before their first prompt NaN rows
        assert np.isfinite(r.video_features[r.tracked]).all()
        assert np.isnan(r.video_features[~r.tracked]).all()
    assert [r.tracked[1] for r in late_records] == [False] * 6 + [True] * 8


def test_features_match_the_masks_they_describe(late_records) -> None:
    for prev, r in zip(late_records, late_records[1:], strict=False):
        for o in np.nonzero(r.tracked)[0]:
            v = r.video_features[o]
            area = r.masks[o].sum()
            assert v[F["area_fraction"]] == pytest.approx(area / r.masks[o].size, abs=1e-6)
            if prev.tracked[o]:
                inter = (r.masks[o] & prev.masks[o]).sum()
                union = (r.masks[o] | prev.masks[o]).sum()
                expected = inter / union if union else 1.0
                assert v[F["prev_iou"]] == pytest.approx(expected, abs=1e-6)
                assert v[F["area_prev_ratio"]] == pytest.approx(
                    np.log((area + 1) / (prev.masks[o].sum() + 1)), abs=1e-5
                )
                trend = r.object_score_logits[o] - prev.object_score_logits[o]
                assert v[F["object_score_trend"]] == pytest.approx(trend, abs=1e-4)
            others = np.delete(r.masks, o, axis=0).any(axis=0)
            covered = (r.masks[o] & others).sum() / area if area else 0.0
            assert v[F["overlap_others"]] == pytest.approx(covered, abs=1e-6)
            assert -1.0 - 1e-5 <= v[F["ptr_cos_cond"]] <= 1.0 + 1e-5


def test_conditioning_frames_reset_the_clock(late_records) -> None:
    since = np.array([r.video_features[:, F["frames_since_cond"]] for r in late_records])
    np.testing.assert_array_equal(since[:, 0], np.arange(14))
    np.testing.assert_array_equal(since[6:, 1], np.arange(8))  # b's own prompt on frame 6
    entered = late_records[6].video_features[1]
    assert entered[F["prev_iou"]] == 1.0 and entered[F["area_prev_ratio"]] == 0.0
    assert entered[F["area_cond_ratio"]] == 0.0 and entered[F["ptr_cos_cond"]] == pytest.approx(1.0)


def test_tracker_sees_an_identity_switch() -> None:
    """Object 1's mask jumps onto object 0: overlap and previous-frame IoU say so."""
    tracker = VideoFeatureTracker(2, torch.device("cpu"))
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :4, :4] = True
    masks[1, 4:, 4:] = True
    ones, logits = np.ones(2, bool), np.zeros(2, np.float32)
    tracker.update(0, masks, ones, ones, logits, [None, None])
    switched = masks.clone()
    switched[1] = masks[0]
    out = tracker.update(1, switched, ones, np.zeros(2, bool), logits, [None, None])
    assert out[1, F["overlap_others"]] == 1.0 and out[0, F["overlap_others"]] == 1.0
    assert out[1, F["prev_iou"]] == 0.0 and out[0, F["prev_iou"]] == 1.0
    assert out[1, F["frames_since_cond"]] == 1.0
    # the track now follows object 0 smoothly: frame-to-frame features look normal again, their
    # extremes since the conditioning frame remember the jump
    later = tracker.update(2, switched, ones, np.zeros(2, bool), logits, [None, None])
    assert later[1, F["prev_iou"]] == 1.0
    assert later[1, F["min_prev_iou_since_cond"]] == 0.0 and later[1, F["max_overlap_since_cond"]] == 1.0
    # a conditioning frame (a correction) starts the extremes afresh
    fixed = tracker.update(3, masks, ones, np.array([False, True]), logits, [None, None])
    assert fixed[1, F["max_overlap_since_cond"]] == 0.0 and fixed[1, F["frames_since_cond"]] == 0.0
    assert fixed[0, F["max_overlap_since_cond"]] == 1.0  # object 0 had no correction


def test_consumer_never_runs_under_autocast(small_model, video: Path, monkeypatch) -> None:
    """The session's autocast encloses sam2's work, not its ``yield`` (CPU autocast stands in for
    CUDA bf16 here)."""
    ds = open_dataset(DatasetConfig(name="vf", root=video))
    session = PropagationSession(small_model, ds.frames("vf"))
    inside: list[bool] = []
    monkeypatch.setattr(session, "_autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    for p in ds.prompts("vf"):
        session.add_prompt(p)
    for r in session.propagate():
        inside.append(torch.is_autocast_enabled("cpu"))
        # what a consumer computes comes out in float32
        assert (torch.from_numpy(r.iou_tokens) @ torch.from_numpy(r.iou_tokens).T).dtype == torch.float32
        if r.frame_index == 2:
            break
    assert inside == [False, False, False]


@pytest.mark.parametrize("n", [1, 7, 255, 256, 409_920, 1_000_003, 2_073_600])
def test_count_true_is_exact(n: int) -> None:
    """The byte-sum count equals torch's own bool sum, for lengths with and without a divisor
    below 256 (1_000_003 is prime) and for rows all True (no uint8 overflow)."""
    from usam_video.engine.features import count_true

    gen = torch.Generator().manual_seed(n)
    flat = torch.rand(3, n, generator=gen) > 0.4
    flat[2] = True
    np.testing.assert_array_equal(count_true(flat).numpy(), flat.sum(dim=1).numpy().astype(np.float32))
    assert count_true(flat).dtype == torch.float32
