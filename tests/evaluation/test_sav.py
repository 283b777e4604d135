"""Tests of usam_video.evaluation.sav and the SA-V reader: the late-appearance convention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from usam_video.errors import EvaluationError
from usam_video.evaluation import (
    evaluate_sav,
    evaluate_sav_object,
    evaluate_sav_video,
    read_sav_prediction_folder,
    stack_sav_frames,
)

T, H, W = 6, 16, 16
FRAMES = [0, 4, 8, 12, 16, 20]  # SA-V annotates every 4th video frame


def blob() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[4:10, 3:9] = True
    return mask


def track(present: list[int]) -> np.ndarray:
    """(T, H, W) masks holding the blob on the given annotated-frame positions."""
    masks = np.zeros((T, H, W), bool)
    for pos in present:
        masks[pos] = blob()
    return masks


def test_perfect_prediction_scores_100() -> None:
    gt = track([0, 1, 2, 3, 4, 5])
    result = evaluate_sav_object(gt, gt)
    assert result is not None
    assert result.j == 100.0 and result.f == 100.0 and result.jf == 100.0
    assert result.n_frames == 4  # first and last annotated frames skipped


def test_late_object_counts_from_its_first_appearance() -> None:
    gt = track([3, 4, 5])  # appears on position 3
    missed = np.zeros_like(gt)
    result = evaluate_sav_object(gt, missed, frame_indices=FRAMES)
    assert result is not None
    # Evaluated positions 1..4; positions 1-2 are empty in both and do NOT count, so the
    # object scores J = mean(0, 0) = 0 -- not (1 + 1 + 0 + 0) / 4 = 0.5.
    assert result.j_per_frame == (0.0, 0.0)
    assert result.j == 0.0 and result.f == 0.0
    assert result.first_frame == 12  # video frame of position 3

    perfect = evaluate_sav_object(gt, gt, frame_indices=FRAMES)
    assert perfect is not None and perfect.j == 100.0 and perfect.n_frames == 2


def test_early_false_positive_starts_the_object() -> None:
    gt = track([3, 4, 5])
    pred = track([1, 3, 4, 5])  # predicted on position 1 although gt is empty there
    result = evaluate_sav_object(gt, pred)
    assert result is not None
    # Scored from position 1 (prediction non-empty): frames 1, 2, 3, 4 ->
    # J = (0 [FP], 1 [both empty], 1, 1) / 4.
    assert result.j_per_frame == (0.0, 1.0, 1.0, 1.0)
    assert result.j == pytest.approx(75.0)
    assert result.first_frame == 1


def test_object_absent_from_evaluated_gt_frames_is_not_reported() -> None:
    gt = {1: track([0]), 2: track([1, 2, 3, 4])}  # object 1 only on the skipped frame 0
    pred = {1: track([0]), 2: track([1, 2, 3, 4]), 9: track([2])}  # 9: ignored
    result = evaluate_sav_video(gt, pred, video="v", frame_indices=FRAMES)
    assert [o.object_id for o in result.objects] == [2]
    assert result.unscored == (1,)
    assert result.frames == (4, 8, 12, 16)
    # Without skipping, frame 0 is evaluated and object 1 is reported.
    full = evaluate_sav_video(gt, pred, skip_first_and_last=False)
    assert [o.object_id for o in full.objects] == [1, 2]
    assert full.objects[0].j == 100.0


def test_void_is_not_special() -> None:
    gt = track([1, 2, 3, 4]).astype(np.uint8) * 255  # 255 is an object pixel, not void
    result = evaluate_sav_object(gt, gt > 0)
    assert result is not None and result.j == 100.0


def test_dataset_means_over_objects() -> None:
    gt_a = {1: track([1, 2, 3, 4]), 2: track([3, 4])}
    pred_a = {1: track([1, 2, 3, 4]), 2: np.zeros((T, H, W), bool)}
    gt_b = {5: track([1, 2, 3, 4])}
    pred_b = {5: track([1, 2])}  # J = (1, 1, 0, 0)
    report = evaluate_sav({"a": (gt_a, pred_a), "b": (gt_b, pred_b)})
    assert [o.j for o in report.objects] == [100.0, 0.0, 50.0]
    assert report.j == pytest.approx(50.0)
    assert report.jf == pytest.approx((report.j + report.f) / 2)
    json.dumps(report.as_dict(per_frame=True), allow_nan=False)


def test_errors() -> None:
    gt = {1: track([1, 2])}
    with pytest.raises(EvaluationError, match=r"found none for \[1\]"):
        evaluate_sav_video(gt, {})
    with pytest.raises(EvaluationError, match="shape"):
        evaluate_sav_video(gt, {1: np.zeros((T, H, W + 1), bool)})
    with pytest.raises(EvaluationError, match="frame indices"):
        evaluate_sav_object(gt[1], gt[1], frame_indices=[0, 4])
    with pytest.raises(EvaluationError, match="same annotated frames"):
        evaluate_sav_video({1: track([1]), 2: track([1])[:4]}, {1: track([1]), 2: track([1])[:4]})
    with pytest.raises(EvaluationError, match="at least one object"):
        evaluate_sav({"v": ({1: track([0])}, {1: track([0])})})


# ----------------------------------------------------------------------------- reader


def _write(path: Path, mask: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask, mode=mode).save(path)


def test_read_sav_prediction_folder(tmp_path: Path) -> None:
    for obj, positions in ((0, [1, 2]), (3, [2, 3])):
        stack = track(positions)
        for pos, t in enumerate(FRAMES):
            _write(tmp_path / "sav_1" / f"{obj:03d}" / f"{t:05d}.png", stack[pos].astype(np.uint8) * 255)
    (tmp_path / "sav_1" / "results.csv").write_text("ignored")

    masks = read_sav_prediction_folder(tmp_path, "sav_1")
    assert sorted(masks) == [0, 3]
    assert sorted(masks[3]) == FRAMES
    assert masks[3][8].dtype == np.bool_ and masks[3][8].sum() == 36
    stacked = stack_sav_frames(masks, FRAMES)
    np.testing.assert_array_equal(stacked[3], track([2, 3]))
    result = evaluate_sav_video(stacked, stacked, frame_indices=FRAMES)
    assert [o.j for o in result.objects] == [100.0, 100.0]

    only = read_sav_prediction_folder(tmp_path, "sav_1", object_ids=[3], frame_indices=[4, 8])
    assert list(only) == [3] and sorted(only[3]) == [4, 8]

    with pytest.raises(
        EvaluationError, match=r"000[/\\]00024\.png: expected the mask of object 0 on frame 24"
    ):
        read_sav_prediction_folder(tmp_path, "sav_1", frame_indices=[20, 24])
    with pytest.raises(EvaluationError, match=r"007: expected the mask folder of object 7"):
        read_sav_prediction_folder(tmp_path, "sav_1", object_ids=[7])
    with pytest.raises(EvaluationError, match=r"expected a 8x16 \(HxW\) mask, found 16x16"):
        read_sav_prediction_folder(tmp_path, "sav_1", size=(8, 16))
    with pytest.raises(EvaluationError, match="expected a mask of object 0 on frame 24"):
        stack_sav_frames(masks, [20, 24])


def test_read_sav_rejects_bad_masks(tmp_path: Path) -> None:
    three_values = np.zeros((H, W), np.uint8)
    three_values[0, 0], three_values[0, 1] = 1, 2
    _write(tmp_path / "v" / "000" / "00000.png", three_values)
    with pytest.raises(EvaluationError, match="one binary object mask per PNG"):
        read_sav_prediction_folder(tmp_path, "v")
    _write(tmp_path / "w" / "000" / "00000.png", np.zeros((H, W, 3), np.uint8), mode="RGB")
    with pytest.raises(EvaluationError, match="colour mode 'RGB'"):
        read_sav_prediction_folder(tmp_path, "w")
    (tmp_path / "x" / "obj").mkdir(parents=True)
    with pytest.raises(EvaluationError, match="named by their id"):
        read_sav_prediction_folder(tmp_path, "x")
