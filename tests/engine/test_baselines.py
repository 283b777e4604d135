"""The mask-based baselines on hand-made logits with known answers."""

import math

import pytest
import torch

from usam_video.engine.capture import mask_entropy, stability_score


def test_entropy_of_a_confident_mask_is_near_zero() -> None:
    logits = torch.full((1, 4, 4), -30.0)
    logits[0, :2] = 30.0
    assert mask_entropy(logits).item() == pytest.approx(0.0, abs=1e-9)


def test_entropy_weighted_by_probability() -> None:
    # two pixels at p = 0.5 (H = ln 2), two at p ~ 1 (H ~ 0): sum(pH)/sum(p) = (2 * 0.5 ln2) / (1 + 2)
    logits = torch.tensor([[[0.0, 0.0], [40.0, 40.0]]])
    assert mask_entropy(logits).item() == pytest.approx(math.log(2) / 3, rel=1e-5)
    assert mask_entropy(torch.zeros(1, 3, 3)).item() == pytest.approx(math.log(2), rel=1e-6)


def test_entropy_of_an_empty_mask_is_zero() -> None:
    assert mask_entropy(torch.full((2, 3, 3), -1e4)).tolist() == [0.0, 0.0]


def test_stability_score() -> None:
    # inside +1: 2 pixels; inside -1: 4 pixels -> 0.5
    logits = torch.tensor([[[5.0, 2.0], [0.5, -0.5]]])
    assert stability_score(logits).item() == pytest.approx(0.5)
    assert stability_score(torch.full((1, 2, 2), 9.0)).item() == 1.0
    assert stability_score(torch.full((1, 2, 2), -9.0)).item() == 1.0  # both empty
    assert stability_score(logits, offset=0.25).item() == pytest.approx(1.0)  # 3 of 3
