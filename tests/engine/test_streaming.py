"""Constant-memory propagation: pruning is exact; late-entering objects; point and box prompts."""

from pathlib import Path

import numpy as np
import pytest

from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.datasets.synthetic import SyntheticVideoSpec, write_davis_dataset
from usam_video.engine import PropagationSession
from usam_video.engine.session import oldest_frame_needed
from usam_video.types import ObjectPrompt


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("long")
    spec = SyntheticVideoSpec(name="long", num_frames=28, height=64, width=80, num_objects=2, seed=4)
    write_davis_dataset(root, [spec])
    return root


def run(model, root: Path, prompts: list[ObjectPrompt], prune: bool = True):
    ds = open_dataset(DatasetConfig(name="l", root=root))
    session = PropagationSession(model, ds.frames("long"), prune=prune)
    for p in prompts:
        session.add_prompt(p)
    records = list(session.propagate())
    return session, records


def first_frame_prompts(root: Path) -> list[ObjectPrompt]:
    return open_dataset(DatasetConfig(name="l", root=root)).prompts("long")


def test_oldest_frame_needed_matches_sam2_windows(small_model) -> None:
    p = small_model.predictor
    assert (p.num_maskmem, p.max_obj_ptrs_in_encoder, p.memory_temporal_stride_for_eval) == (7, 16, 1)
    assert oldest_frame_needed(p, 100, 1000) == 100 - 15  # object pointers reach furthest back
    assert oldest_frame_needed(p, 100, 10) == 100 - 9  # pointer window is capped by the video length


def test_pruned_run_equals_unpruned_bit_for_bit(small_model, long_video: Path) -> None:
    prompts = first_frame_prompts(long_video)
    pruned_session, pruned = run(small_model, long_video, prompts, prune=True)
    full_session, full = run(small_model, long_video, prompts, prune=False)
    assert len(pruned) == len(full) == 28
    for a, b in zip(pruned, full, strict=True):
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.iou_tokens, b.iou_tokens)
        np.testing.assert_array_equal(a.mask_tokens, b.mask_tokens)
        np.testing.assert_array_equal(a.candidate_ious, b.candidate_ious)
        np.testing.assert_array_equal(a.object_score_logits, b.object_score_logits)
    for obj in pruned_session._state["output_dict_per_obj"].values():
        assert len(obj["non_cond_frame_outputs"]) <= 16  # a window, not the whole video
        assert list(obj["cond_frame_outputs"]) == [0]  # prompts are kept
    for obj in full_session._state["output_dict_per_obj"].values():
        assert len(obj["non_cond_frame_outputs"]) == 27


def test_late_entering_object(small_model, long_video: Path) -> None:
    a, b = first_frame_prompts(long_video)
    late_b = ObjectPrompt(
        b.object_id,
        10,
        mask=open_dataset(DatasetConfig(name="l", root=long_video))
        .ground_truth("long", 10)
        .mask_of(b.object_id),
    )
    _, both = run(small_model, long_video, [a, late_b])
    assert [r.frame_index for r in both] == list(range(28))
    for r in both[:10]:
        assert r.object_ids == (a.object_id, b.object_id)
        assert r.tracked.tolist() == [True, False]
        assert not r.masks[1].any() and np.isnan(r.sam_iou[1]) and r.chosen_candidate[1] == -1
    assert both[10].is_prompt.tolist() == [False, True] and both[10].tracked.all()
    assert all(r.tracked.all() for r in both[10:])
    # objects are tracked independently: each equals its run alone
    _, only_a = run(small_model, long_video, [a])
    _, only_b = run(small_model, long_video, [late_b])
    assert [r.frame_index for r in only_b] == list(range(10, 28))
    for r, ra in zip(both, only_a, strict=True):
        np.testing.assert_array_equal(r.masks[0], ra.masks[0])
    for r, rb in zip(both[10:], only_b, strict=True):
        np.testing.assert_array_equal(r.masks[1], rb.masks[0])
        np.testing.assert_array_equal(r.iou_tokens[1], rb.iou_tokens[0])


def test_point_and_box_prompts(small_model, long_video: Path) -> None:
    a, b = first_frame_prompts(long_video)
    ys, xs = np.nonzero(a.mask)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32)
    yb, xb = np.nonzero(b.mask)
    points = np.array([[xb.mean(), yb.mean()]], np.float32)
    prompts = [
        ObjectPrompt(a.object_id, 0, box=box),
        ObjectPrompt(b.object_id, 3, points=points, point_labels=np.array([1], np.int32)),
    ]
    _, records = run(small_model, long_video, prompts)
    assert records[0].is_prompt.tolist() == [True, False] and records[0].tracked.tolist() == [True, False]
    assert records[3].is_prompt.tolist() == [False, True]
    assert np.isfinite(records[3].iou_tokens).all() and np.isfinite(records[0].sam_iou[0])


def test_prompt_validation(small_model, long_video: Path) -> None:
    from usam_video.errors import InputError

    ds = open_dataset(DatasetConfig(name="l", root=long_video))
    session = PropagationSession(small_model, ds.frames("long"))
    with pytest.raises(InputError, match=r"points \(N, 2\)"):
        session.add_prompt(ObjectPrompt(1, 0, points=np.zeros((2, 3)), point_labels=np.zeros(2)))
    with pytest.raises(InputError, match="box"):
        session.add_prompt(ObjectPrompt(1, 0, box=np.zeros(3)))
    session.add_prompt(ObjectPrompt(1, 0, box=np.array([1, 1, 5, 5])))
    with pytest.raises(InputError, match="one prompt per object and frame"):
        session.add_prompt(ObjectPrompt(1, 0, box=np.array([1, 1, 6, 6])))
    with pytest.raises(ValueError, match="needs a mask, points or a box"):
        ObjectPrompt(1, 0)


def test_candidate_masks_hold_the_chosen_mask(small_model, long_video: Path) -> None:
    ds = open_dataset(DatasetConfig(name="l", root=long_video))
    session = PropagationSession(small_model, ds.frames("long"), keep_candidates=True)
    for p in ds.prompts("long"):
        session.add_prompt(p)
    records = [r for _, r in zip(range(6), session.propagate(), strict=False)]
    for r in records[1:]:
        assert r.candidate_masks.shape == (2, 4, 64, 80)
        # tracking uses multimask output: tokens 1..3 are real candidates, token 0 is not
        assert r.candidate_valid.tolist() == [[False, True, True, True]] * 2
        for o in range(2):
            np.testing.assert_array_equal(r.candidate_masks[o, r.chosen_candidate[o]], r.masks[o])


def test_probe_points_leaves_tracking_unchanged(small_model, long_video: Path) -> None:
    prompts = first_frame_prompts(long_video)
    _, plain = run(small_model, long_video, prompts)
    ds = open_dataset(DatasetConfig(name="l", root=long_video))
    session = PropagationSession(small_model, ds.frames("long"))
    for p in prompts:
        session.add_prompt(p)
    probed = []
    for r in session.propagate():
        probed.append(r)
        if r.frame_index in (5, 20):
            gt = ds.ground_truth("long", r.frame_index).mask_of(prompts[0].object_id)
            ys, xs = np.nonzero(gt)
            points = np.stack([xs[:8], ys[:8]], axis=1).astype(np.float32)
            mask, call = session.probe_points(
                r.frame_index, prompts[0].object_id, points, np.ones(8, np.int32)
            )
            again, call2 = session.probe_points(
                r.frame_index, prompts[0].object_id, points, np.ones(8, np.int32)
            )
            assert mask.shape == (64, 80) and mask.dtype == bool
            np.testing.assert_array_equal(mask, again)
            np.testing.assert_array_equal(call.iou_tokens, call2.iou_tokens)
            assert not np.array_equal(
                call.iou_tokens[0], r.iou_tokens[0]
            )  # the clicks changed the decoder input
    for a, b in zip(plain, probed, strict=True):
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.iou_tokens, b.iou_tokens)
    with pytest.raises(Exception, match="suspended"):
        session.probe_points(5, prompts[0].object_id, points, np.ones(8, np.int32))
