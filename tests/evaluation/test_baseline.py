"""The copy-first-mask baseline computed in memory (usam_video.evaluation.baseline): the masks it
predicts, and the same J&F as the baseline written as palette PNGs and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from usam_video.config import DatasetConfig
from usam_video.errors import EvaluationError
from usam_video.evaluation.baseline import CopyFirstMask
from usam_video.pipeline.evaluate import evaluate_copy_first_mask, evaluate_predictions
from usam_video.types import FrameAnnotation

VIDEOS = ["synth-000", "synth-001", "synth-002"]


def test_objects_are_painted_in_order_the_later_one_winning_an_overlap() -> None:
    masks = np.zeros((2, 4, 5), bool)
    masks[0, :2] = True  # rows 0-1
    masks[1, 1:3] = True  # rows 1-2: row 1 overlaps object 3
    baseline = CopyFirstMask.of(FrameAnnotation(0, (3, 7), masks), 4, 5)
    assert baseline.index_map.dtype == np.uint8 and baseline.index_map.shape == (4, 5)
    assert baseline.index_map[:, 0].tolist() == [3, 7, 7, 0]
    frames = baseline.frames([2, 5], None)
    assert sorted(frames) == [2, 5]
    assert frames[5].object_ids == (3, 7) and frames[5].masks.shape == (2, 4, 5)
    assert frames[5].index_map is baseline.index_map
    asked = baseline.frames([1], [7, 9]).get(1)
    assert asked is not None and asked.object_ids == (7, 9) and not asked.masks[1].any()


def test_no_first_annotation_predicts_nothing() -> None:
    frames = CopyFirstMask.of(None, 3, 2).frames([0], None)
    assert not frames[0].index_map.any() and frames[0].masks.shape == (0, 3, 2)


@pytest.mark.parametrize("protocol", ["davis", "sav"])
def test_in_memory_equals_the_written_pngs(synth_root: Path, tmp_path: Path, protocol: str) -> None:
    from usam_video.pipeline.train_model import write_copy_first_mask

    dataset = DatasetConfig(name="synth", root=synth_root, videos=VIDEOS)
    assert write_copy_first_mask(dataset, tmp_path) == VIDEOS
    written = evaluate_predictions(tmp_path, dataset, protocol, layout="davis", random_seed=None)
    in_memory = evaluate_copy_first_mask(dataset, protocol)
    assert in_memory.source_kind == "copy-first-mask" and in_memory.videos == tuple(VIDEOS)
    assert in_memory.sequence_rows() == written.sequence_rows()
    assert in_memory.global_scores() == written.global_scores()
    assert in_memory.global_scores()["J&F"] is not None


def test_unknown_protocol_is_refused(synth_root: Path) -> None:
    dataset = DatasetConfig(name="synth", root=synth_root, videos=VIDEOS)
    with pytest.raises(EvaluationError, match="protocol"):
        evaluate_copy_first_mask(dataset, "kitti")
