"""CVAT mask RLE and COCO compressed RLE: exact round trips and strict decoding."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from usam_video.review.rle import (
    RleError,
    coco_counts_from_string,
    coco_rle_decode,
    coco_rle_encode,
    cvat_rle_decode,
    cvat_rle_encode,
)


def test_cvat_rle_is_row_major_over_the_bounding_box_and_starts_with_background() -> None:
    mask = np.zeros((5, 6), bool)
    mask[1, 2:4] = True  # row 1: ..##..
    mask[2, 3] = True  # row 2: ...#..
    rle = cvat_rle_encode(mask)
    assert rle is not None
    assert (rle.left, rle.top, rle.width, rle.height) == (2, 1, 2, 2)
    # crop rows "##" then ".#": the crop starts with foreground, so a 0-run of background first
    assert rle.runs == (0, 2, 1, 1) and rle.text == "0, 2, 1, 1"
    np.testing.assert_array_equal(cvat_rle_decode(rle.text, 2, 1, 2, 2, 5, 6), mask)
    assert cvat_rle_encode(np.zeros((5, 6), bool)) is None


def test_random_masks_round_trip_in_both_encodings() -> None:
    rng = np.random.default_rng(0)
    for i in range(60):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        mask = rng.random((h, w)) < rng.random()
        coco = coco_rle_encode(mask)
        assert isinstance(coco["counts"], str) and coco["size"] == [h, w]
        np.testing.assert_array_equal(coco_rle_decode(coco, h, w), mask)
        # our decoder agrees with pycocotools'
        ref = mask_utils.decode({"size": [h, w], "counts": str(coco["counts"]).encode()})
        np.testing.assert_array_equal(ref.astype(bool), mask)
        cvat = cvat_rle_encode(mask)
        if cvat is not None:
            np.testing.assert_array_equal(
                cvat_rle_decode(cvat.text, cvat.left, cvat.top, cvat.width, cvat.height, h, w), mask, str(i)
            )


@pytest.mark.parametrize(
    ("rle", "left", "top", "width", "height", "message"),
    [
        ("0, 3", "0", "0", "2", "2", "adding up to"),  # 3 pixels for a 2x2 crop
        ("5, -1", "0", "0", "2", "2", "non-negative"),
        ("a, b", "0", "0", "2", "2", "integer run lengths"),
        ("0, 4", "5", "0", "2", "2", "inside the"),  # crop leaves the 4x6 image
        ("0, 4", "0", "0", "2.5", "2", "integer width"),
        (None, "0", "0", "2", "2", "'rle' attribute"),
        ("0, 4", None, "0", "2", "2", "'left'"),
    ],
)
def test_cvat_rle_decode_refuses_bad_input(rle, left, top, width, height, message) -> None:
    with pytest.raises(RleError, match=message):
        cvat_rle_decode(rle, left, top, width, height, 4, 6)


def test_coco_decode_accepts_uncompressed_rle_and_polygons() -> None:
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True
    counts = coco_counts_from_string(str(coco_rle_encode(mask)["counts"]))
    np.testing.assert_array_equal(coco_rle_decode({"size": [4, 5], "counts": counts}, 4, 5), mask)
    poly = coco_rle_decode([[1, 1, 3.9, 1, 3.9, 2.9, 1, 2.9]], 4, 5)
    assert poly.shape == (4, 5) and poly[1:3, 1:4].all()


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ({"size": [4, 5], "counts": "!!"}, "characters"),
        ({"size": [4, 5], "counts": "0"}, "adding up to"),
        ({"size": [4, 5], "counts": "o"}, "ends inside a number"),
        ({"size": [4, 5], "counts": [3, 2]}, "adding up to"),
        ({"size": [4, 5], "counts": [25, -5]}, "non-negative"),
        ({"size": [4], "counts": "0"}, "'size'"),
        ({"counts": "0"}, "'size' and 'counts'"),
        ("nope", "'size' and 'counts'"),
        ([[1, 2]], "polygons"),
    ],
)
def test_coco_decode_refuses_bad_input(segmentation, message) -> None:
    with pytest.raises(RleError, match=message):
        coco_rle_decode(segmentation, 4, 5)
