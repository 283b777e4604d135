"""Tests of usam_video.evaluation.jf and the DAVIS reader: hand-worked J, F and statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from usam_video.errors import EvaluationError
from usam_video.evaluation import (
    boundary_radius,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    dilate_disk,
    disk,
    evaluate_davis,
    evaluate_davis_sequence,
    f_measure,
    read_davis_prediction_folder,
    seg2bmap,
)


def square(shape: tuple[int, int], top: int, left: int, size: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


# ----------------------------------------------------------------------------- J


def test_iou_known_overlap() -> None:
    gt = np.zeros((4, 6), bool)
    gt[0:2, 0:4] = True  # 8 pixels
    pred = np.zeros((4, 6), bool)
    pred[0:2, 2:6] = True  # 8 pixels, 4 shared
    assert db_eval_iou(gt, pred) == pytest.approx(4 / 12)


def test_iou_both_empty_is_one_and_one_empty_is_zero() -> None:
    empty = np.zeros((5, 5), bool)
    full = np.ones((5, 5), bool)
    assert db_eval_iou(empty, empty) == 1.0
    assert db_eval_iou(full, empty) == 0.0
    assert db_eval_iou(empty, full) == 0.0


def test_iou_per_frame_shape_and_values() -> None:
    gt = np.zeros((3, 4, 4), bool)
    pred = np.zeros((3, 4, 4), bool)
    gt[0, 0, 0] = pred[0, 0, 0] = True  # 1
    gt[1, :2] = True
    pred[1, :1] = True  # 4 of 8 -> 0.5
    # frame 2 empty in both -> 1
    j = db_eval_iou(gt, pred)
    assert isinstance(j, np.ndarray) and j.dtype == np.float64 and j.shape == (3,)
    np.testing.assert_allclose(j, [1.0, 0.5, 1.0])


def test_iou_void_pixels_are_left_out() -> None:
    gt = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 0]], bool)
    void = np.array([[0, 1, 0, 0]], bool)
    # Without void: 1 shared of 3 covered. With pixel 1 void: 1 shared of 2.
    assert db_eval_iou(gt, pred) == pytest.approx(1 / 3)
    assert db_eval_iou(gt, pred, void) == pytest.approx(1 / 2)
    # Everything outside void empty -> 1.
    assert db_eval_iou(gt, np.zeros_like(gt), np.ones_like(gt)) == 1.0


def test_iou_shape_mismatch_raises() -> None:
    with pytest.raises(EvaluationError, match="same shape"):
        db_eval_iou(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


# ----------------------------------------------------------------------------- boundary


def test_boundary_radius_davis_resolutions() -> None:
    assert boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.7) = ceil(7.84)
    assert boundary_radius((848, 480)) == 8  # ceil(0.008 * 974.4) = ceil(7.795)
    assert boundary_radius((1080, 1920)) == 18  # ceil(0.008 * 2202.9) = ceil(17.62)
    assert boundary_radius((10, 10)) == 1
    assert boundary_radius((480, 854), 3) == 3
    assert boundary_radius((480, 854), 0) == 0
    with pytest.raises(EvaluationError, match="whole number"):
        boundary_radius((480, 854), 2.5)


def test_disk_footprint() -> None:
    expected = np.array(
        [
            [0, 0, 1, 0, 0],
            [0, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
            [0, 1, 1, 1, 0],
            [0, 0, 1, 0, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(disk(2), expected)
    assert disk(8).shape == (17, 17) and disk(8).sum() == 197


def test_dilate_disk_matches_scipy() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    mask = rng.random((41, 67)) < 0.02
    mask[0, 0] = mask[-1, -1] = True  # borders
    for radius in (0, 1, 2, 5, 8):
        expected = ndimage.binary_dilation(mask, disk(radius)) if radius else mask
        np.testing.assert_array_equal(dilate_disk(mask, radius), expected)


def test_seg2bmap_of_one_pixel() -> None:
    seg = np.zeros((5, 5), bool)
    seg[2, 2] = True
    expected = np.zeros((5, 5), bool)
    # The pixel itself (differs from its right neighbour) and the three pixels whose right,
    # lower or lower-right neighbour it is.
    expected[1, 1] = expected[1, 2] = expected[2, 1] = expected[2, 2] = True
    np.testing.assert_array_equal(seg2bmap(seg), expected)


def test_seg2bmap_last_row_and_column_rules() -> None:
    seg = np.ones((3, 3), bool)
    # The last row only compares with its right neighbour and the last column only with
    # the one below, so a mask filling the image has no boundary along the image border.
    np.testing.assert_array_equal(seg2bmap(seg), np.zeros((3, 3), bool))
    seg = np.zeros((3, 3), bool)
    seg[2, 2] = True  # bottom-right pixel is never a boundary
    expected = np.zeros((3, 3), bool)
    expected[1, 1] = True  # lower-right neighbour differs
    expected[1, 2] = True  # last column: compares with the pixel below
    expected[2, 1] = True  # last row: compares with the pixel to the right
    np.testing.assert_array_equal(seg2bmap(seg), expected)


def test_boundary_both_empty_is_one_one_empty_is_zero() -> None:
    empty = np.zeros((20, 20), bool)
    blob = square((20, 20), 5, 5, 6)
    assert db_eval_boundary(empty, empty) == 1.0
    assert db_eval_boundary(blob, empty) == 0.0  # prediction has no boundary: recall 0
    assert db_eval_boundary(empty, blob) == 0.0  # gt has no boundary: precision 0


def test_boundary_one_pixel_masks() -> None:
    gt = np.zeros((10, 10), bool)
    gt[5, 5] = True
    assert db_eval_boundary(gt, gt) == 1.0
    pred = np.zeros((10, 10), bool)
    pred[5, 6] = True
    # 10x10 -> radius ceil(0.008 * 14.1) = 1: every boundary pixel of the one-column
    # shift lies 1 pixel from the other boundary -> F = 1 although J = 0.
    assert db_eval_iou(gt, pred) == 0.0
    assert db_eval_boundary(gt, pred) == 1.0
    # Radius 0 (bound_th=0): boundaries {(4,4),(4,5),(5,4),(5,5)} and
    # {(4,5),(4,6),(5,5),(5,6)} share 2 of 4 -> P = R = 1/2 -> F = 1/2.
    assert db_eval_boundary(gt, pred, bound_th=0) == pytest.approx(0.5)


def test_boundary_shift_within_and_beyond_radius_480p() -> None:
    shape = (480, 854)  # radius 8
    gt = square(shape, 200, 300, 40)
    within = square(shape, 200, 308, 40)  # 8 px right: every boundary pixel matches
    assert db_eval_boundary(gt, within) == 1.0
    assert db_eval_iou(gt, within) == pytest.approx(40 * 32 / (40 * 48))
    far = square(shape, 200, 400, 40)  # disjoint and > 8 px away everywhere
    assert db_eval_boundary(gt, far) == 0.0


def _brute_force_f(gt: np.ndarray, pred: np.ndarray, radius: int) -> float:
    """The F definition written out with pairwise distances, independent of dilation."""
    gb = np.argwhere(seg2bmap(gt))
    pb = np.argwhere(seg2bmap(pred))
    if len(gb) == 0 or len(pb) == 0:
        return 1.0 if len(gb) == len(pb) else 0.0
    d2 = ((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1)
    close = d2 <= radius * radius
    precision = close.any(1).mean()
    recall = close.any(0).mean()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_boundary_matches_brute_force_definition() -> None:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:60, :90]  # diagonal 108.2 -> radius 1 at 0.008; use 0.04 -> 5
    for _ in range(5):
        cy, cx, r = rng.integers(10, 50), rng.integers(10, 80), rng.integers(3, 15)
        gt = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        pred = np.roll(gt, (rng.integers(-7, 8), rng.integers(-7, 8)), (0, 1))
        pred[rng.random(pred.shape) < 0.01] = True
        radius = boundary_radius(gt.shape, 0.04)
        assert radius == 5
        assert f_measure(pred, gt, bound_th=0.04) == pytest.approx(_brute_force_f(gt, pred, radius))


def test_boundary_void_removed_from_masks() -> None:
    gt = square((40, 40), 5, 5, 10)
    pred = gt | square((40, 40), 25, 25, 8)  # a false-positive blob
    void = square((40, 40), 24, 24, 10)  # covers the blob only
    assert db_eval_boundary(gt, pred) < 1.0
    assert db_eval_boundary(gt, pred, void) == 1.0
    assert db_eval_iou(gt, pred, void) == 1.0


# ----------------------------------------------------------------------------- statistics


def test_statistics_hand_worked() -> None:
    values = [1.0, 1.0, 0.9, 0.8, 0.6, 0.4, 0.2, 0.0]
    mean, recall, decay = db_statistics(values)
    assert mean == pytest.approx(4.9 / 8)
    assert recall == pytest.approx(5 / 8)  # strictly > 0.5
    # Bin edges: round(linspace(1, 8, 5) + 1e-10) - 1 = [0, 2, 4, 5, 7]; first bin
    # v[0:3] = (1, 1, .9), last bin v[5:8] = (.4, .2, 0). (np.array_split would give
    # (1, 1) and (.2, 0), i.e. 0.9 -- not what the reference computes.)
    assert decay == pytest.approx((2.9 / 3) - (0.6 / 3))


def test_statistics_short_sequences_and_threshold() -> None:
    assert db_statistics([0.7]) == pytest.approx((0.7, 1.0, 0.0))
    mean, recall, decay = db_statistics([0.9, 0.5])
    assert recall == 0.5  # 0.5 itself is not a success
    assert decay == pytest.approx(0.4)  # bins [v0], [v0 v1], [v1], [v1]


# ----------------------------------------------------------------------------- sequences


def _toy_sequence() -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((5, 12, 12), np.uint8)
    gt[:, 1:5, 1:5] = 1
    gt[:, 7:11, 7:11] = 2
    gt[2, 0:2, 9:11] = 3  # id 3 is not in the first frame -> not an object
    pred = gt.copy()
    pred[pred == 3] = 0
    pred[2][pred[2] == 2] = 0  # object 2 lost on frame 2
    pred[0] = 0  # first and last frames are not evaluated
    pred[4] = 1
    return gt, pred


def test_sequence_semisupervised_protocol() -> None:
    gt, pred = _toy_sequence()
    result = evaluate_davis_sequence(gt, pred, sequence="toy")
    assert result.frames == (1, 2, 3)
    obj1, obj2 = result.objects
    assert (obj1.object_id, obj2.object_id) == (1, 2)
    assert obj1.j == (1.0, 1.0, 1.0) and obj1.f == (1.0, 1.0, 1.0)
    assert obj2.j == (1.0, 0.0, 1.0) and obj2.f == (1.0, 0.0, 1.0)
    assert obj2.j_mean == pytest.approx(2 / 3)
    assert obj2.j_recall == pytest.approx(2 / 3)
    # 3 frames: edges round(linspace(1, 3, 5) + 1e-10) - 1 = [0, 1, 1, 2, 2], bins
    # [v0 v1], [v1], [v1 v2], [v2] -> decay = mean(1, 0) - 1 = -0.5.
    assert obj2.j_decay == pytest.approx(-0.5)
    assert obj1.name == "toy_1"
    full = evaluate_davis_sequence(gt, pred, skip_first_and_last=False)
    assert full.frames == (0, 1, 2, 3, 4)
    assert full.objects[0].j[0] == 0.0  # frame 0 is scored now


def test_sequence_void_counts_as_background() -> None:
    gt = np.zeros((3, 4, 4), np.uint8)
    gt[:, 0, :2] = 1
    gt[:, 1, :2] = 255
    pred = np.zeros_like(gt)
    pred[:, :2, :2] = 1  # also labels the void pixels
    result = evaluate_davis_sequence(gt, pred)
    assert result.objects[0].j == (pytest.approx(2 / 4),)
    excluded = evaluate_davis_sequence(gt, pred, exclude_void=True)
    assert excluded.objects[0].j == (1.0,)


def test_sequence_errors() -> None:
    gt, pred = _toy_sequence()
    bad = pred.copy()
    bad[1, 0, 0] = 3
    with pytest.raises(EvaluationError, match="ids 0..2"):
        evaluate_davis_sequence(gt, bad)
    bad[1, 0, 0] = 255  # void in a prediction is an id too
    with pytest.raises(EvaluationError, match="found id 255"):
        evaluate_davis_sequence(gt, bad)
    with pytest.raises(EvaluationError, match="shape"):
        evaluate_davis_sequence(gt, pred[:, :-1])
    with pytest.raises(EvaluationError, match="at least 3 frames"):
        evaluate_davis_sequence(gt[:2], pred[:2])
    with pytest.raises(EvaluationError, match="first ground-truth frame"):
        evaluate_davis_sequence(np.zeros_like(gt), pred)
    with pytest.raises(EvaluationError, match="integer dtype"):
        evaluate_davis_sequence(gt.astype(float), pred)


def test_missing_object_in_prediction_scores_zero() -> None:
    gt, pred = _toy_sequence()
    pred[pred == 2] = 0
    result = evaluate_davis_sequence(gt, pred)
    assert result.objects[1].j == (0.0, 0.0, 0.0)


def test_dataset_report_is_mean_over_objects() -> None:
    gt, pred = _toy_sequence()
    single = np.zeros((3, 6, 6), np.uint8)
    single[:, 1:4, 1:4] = 1
    report = evaluate_davis({"toy": (gt, pred), "single": (single, single)})
    objects = report.objects
    assert [o.name for o in objects] == ["toy_1", "toy_2", "single_1"]
    assert report.j_mean == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert report.f_mean == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert report.jf_mean == pytest.approx(np.mean([o.jf_mean for o in objects]))
    assert report.j_recall == pytest.approx((1 + 2 / 3 + 1) / 3)
    data = json.loads(json.dumps(report.as_dict(per_frame=True), allow_nan=False))
    assert data["J&F-Mean"] == pytest.approx(report.jf_mean)
    assert data["sequences"][0]["objects"][1]["J"] == [1.0, 0.0, 1.0]
    assert report.per_object_rows()[1] == ("toy_2", pytest.approx(2 / 3), pytest.approx(2 / 3))
    # Iterable of (name, gt, pred) gives the same report.
    again = evaluate_davis(iter([("toy", gt, pred), ("single", single, single)]))
    assert again == report
    with pytest.raises(EvaluationError, match="at least one sequence"):
        evaluate_davis({})


# ----------------------------------------------------------------------------- reader


def test_read_davis_prediction_folder(tmp_path: Path) -> None:
    from usam_video.palette import write_palette_png

    gt, _ = _toy_sequence()
    for t, frame in enumerate(gt):
        write_palette_png(tmp_path / "toy" / f"{t:05d}.png", frame)
    np.testing.assert_array_equal(read_davis_prediction_folder(tmp_path, "toy"), gt)
    got = read_davis_prediction_folder(tmp_path, "toy", num_frames=3, size=(12, 12))
    assert got.dtype == np.uint8 and got.shape == (3, 12, 12)

    with pytest.raises(EvaluationError, match=r"00005\.png: expected the mask of frame 5 \(of 6\)"):
        read_davis_prediction_folder(tmp_path, "toy", num_frames=6)
    with pytest.raises(EvaluationError, match=r"expected a 10x12 \(HxW\) mask, found 12x12"):
        read_davis_prediction_folder(tmp_path, "toy", size=(10, 12))
    with pytest.raises(EvaluationError, match="found nothing"):
        read_davis_prediction_folder(tmp_path, "absent")
    (tmp_path / "toy" / "00002.png").unlink()
    with pytest.raises(EvaluationError, match=r"00002\.png: expected the mask of frame 2 \(of 5\)"):
        read_davis_prediction_folder(tmp_path, "toy")
    write_palette_png(tmp_path / "toy" / "00002.png", np.zeros((8, 12), np.uint8))
    with pytest.raises(EvaluationError, match=r"00002\.png: expected a 12x12"):
        read_davis_prediction_folder(tmp_path, "toy")


# ----------------------------------------------------------------------------- real DAVIS


@pytest.fixture(scope="module")
def blackswan(davis_root: Path) -> np.ndarray:
    """uint8 (50, 480, 854) ground truth of the shared DAVIS sample; ``davis_root`` (from
    tests/conftest.py) is ``$USAM_SHARED_DATA/davis``, by default ``<repo>/../shared/data``."""
    return read_davis_prediction_folder(davis_root / "Annotations" / "480p", "blackswan")


def test_blackswan_ground_truth_as_prediction_is_perfect(blackswan: np.ndarray) -> None:
    assert blackswan.shape == (50, 480, 854)
    report = evaluate_davis({"blackswan": (blackswan, np.where(blackswan == 255, 0, blackswan))})
    assert report.jf_mean == 1.0 and report.j_mean == 1.0 and report.f_mean == 1.0
    assert report.j_recall == 1.0 and report.j_decay == 0.0
    assert len(report.objects) == 1 and len(report.objects[0].j) == 48


def test_blackswan_shifted_by_one_frame(blackswan: np.ndarray) -> None:
    gt = blackswan
    pred = np.concatenate([gt[:1], gt[:-1]])  # pred[t] = gt[t-1], pred[0] = gt[0]
    pred = np.where(pred == 255, 0, pred).astype(np.uint8)
    report = evaluate_davis({"blackswan": (gt, pred)})
    obj = report.objects[0]
    # Independent J of frame 20: evaluated frames start at 1, so index 19.
    g = gt[20] == 1
    p = gt[19] == 1
    expected = np.logical_and(g, p).sum() / np.logical_or(g, p).sum()
    assert obj.j[19] == pytest.approx(expected, abs=1e-12)
    assert 0.0 < report.j_mean < 1.0
    # The swan moves less than the 8-pixel boundary tolerance between frames, so F stays
    # at (or near) 1 while J drops.
    assert 0.0 < report.f_mean <= 1.0
    assert 0.0 < report.jf_mean < 1.0
    assert report.jf_mean == pytest.approx((report.j_mean + report.f_mean) / 2)
