"""Propagation with token capture on the real SAM 2 architecture (small config, random weights)."""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.engine import PropagationSession, Sam2Frames
from usam_video.errors import InputError
from usam_video.types import ObjectPrompt


@pytest.fixture(scope="module")
def synth_records(small_model, synth_root: Path):
    ds = open_dataset(DatasetConfig(name="s", root=synth_root))
    session = PropagationSession(small_model, ds.frames("synth-002"))
    prompts = ds.prompts("synth-002")
    for prompt in prompts:
        session.add_prompt(prompt)
    return prompts, list(session.propagate())


def test_one_record_per_frame_with_every_field(synth_records) -> None:
    prompts, records = synth_records
    assert [r.frame_index for r in records] == list(range(6))
    o = len(prompts)
    for r in records:
        assert r.object_ids == (1, 2, 3)
        assert r.masks.shape == (o, 96, 128) and r.masks.dtype == bool
        assert r.iou_tokens.shape == (o, 256) and r.mask_tokens.shape == (o, 4, 256)
        assert r.candidate_ious.shape == (o, 4) and r.sam_iou.shape == (o,)
        assert np.isfinite(r.iou_tokens).all() and np.isfinite(r.mask_tokens).all()
        assert ((r.chosen_candidate >= 0) & (r.chosen_candidate < 4)).all()
        assert r.object_score_logits.shape == (o,)


def test_prompted_frame_carries_tokens_and_the_prompt_mask(synth_records) -> None:
    prompts, records = synth_records
    first = records[0]
    assert first.is_prompt.all()
    assert not any(r.is_prompt.any() for r in records[1:])
    assert np.abs(first.iou_tokens).sum(axis=1).min() > 0  # real tokens, not placeholders
    for o, prompt in enumerate(prompts):
        inter = (first.masks[o] & prompt.mask).sum()
        union = (first.masks[o] | prompt.mask).sum()
        assert inter / union > 0.8  # the prompt itself, through sam2's 256 px round trip
    # tokens differ between frames (the decoder really ran on each)
    assert not np.allclose(records[1].iou_tokens, records[2].iou_tokens)


def test_decoder_iou_head_on_captured_token_reproduces_predicted_iou(small_model, synth_records) -> None:
    _, records = synth_records
    head = small_model.predictor.sam_mask_decoder.iou_prediction_head
    for r in records:
        with torch.no_grad():
            recomputed = head(torch.from_numpy(r.iou_tokens)).numpy()
        np.testing.assert_allclose(recomputed, r.candidate_ious, atol=1e-5)
        np.testing.assert_allclose(
            r.sam_iou, recomputed[np.arange(len(r.object_ids)), r.chosen_candidate], atol=1e-5
        )
    # tracked frames use multimask output (SAM 2.1): the chosen token is the best of 1..3
    for r in records[1:]:
        assert (r.chosen_candidate == 1 + np.argmax(r.candidate_ious[:, 1:], axis=1)).all()


def _ours_and_stock(
    model, synth_root: Path, video: str, prompts: list[ObjectPrompt] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every frame's masks from a session and from stock sam2 (``init_state`` on the folder),
    from the video's own first-frame masks or from ``prompts``."""
    ds = open_dataset(DatasetConfig(name="s", root=synth_root))
    prompts = prompts or ds.prompts(video)
    session = PropagationSession(model, ds.frames(video))
    for p in prompts:
        session.add_prompt(p)
    ours = [r.masks for r in session.propagate()]

    predictor = model.predictor
    state = predictor.init_state(str(synth_root / "JPEGImages/480p" / video))
    for p in prompts:
        predictor.add_new_mask(state, 0, p.object_id, torch.from_numpy(p.mask))
    stock = [(logits[:, 0] > 0).cpu().numpy() for _, _, logits in predictor.propagate_in_video(state)]
    return ours, stock


def test_masks_equal_stock_sam2_on_a_jpeg_folder(small_model, synth_root: Path) -> None:
    """Our lazy frame source and inference state, and the resize to video resolution done by
    the assembler instead of in sam2's loop, give sam2's own results, bit for bit."""
    ours, stock = _ours_and_stock(small_model, synth_root, "synth-001")
    assert len(ours) == len(stock) == 6
    for a, b in zip(ours, stock, strict=True):
        np.testing.assert_array_equal(a, b)


def test_masks_equal_stock_sam2_with_non_overlapping_masks(
    small_model, synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sam2 applies its non-overlap constraint where it resizes to video resolution: the
    assembler's resize applies it too."""
    boxes = [(10, 70, 10, 90), (30, 90, 40, 120)]  # two overlapping prompts: overlapping masks
    prompts = []
    for object_id, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        mask = np.zeros((96, 128), bool)
        mask[y0:y1, x0:x1] = True
        prompts.append(ObjectPrompt(object_id=object_id, frame_index=0, mask=mask))
    plain, _ = _ours_and_stock(small_model, synth_root, "synth-001", prompts)
    monkeypatch.setattr(small_model.predictor, "non_overlap_masks", True)
    ours, stock = _ours_and_stock(small_model, synth_root, "synth-001", prompts)
    for a, b in zip(ours, stock, strict=True):
        np.testing.assert_array_equal(a, b)
        assert (a.sum(axis=0) <= 1).all()  # no pixel in two objects' masks
    # the constraint changed something here (else this test could not tell it was applied)
    assert any((m.sum(axis=0) > 1).any() for m in plain)


def test_low_res_output_leaves_the_resize_to_the_caller_on_its_own_thread_only(
    small_model, synth_root: Path
) -> None:
    predictor = small_model.predictor
    state = predictor.init_state(str(synth_root / "JPEGImages/480p/synth-001"))
    mask = np.zeros((96, 128), bool)
    mask[20:60, 30:90] = True
    predictor.add_new_mask(state, 0, 1, torch.from_numpy(mask))
    low = torch.randn(2, 1, 64, 64)
    beside: dict[str, tuple[int, ...]] = {}

    def resize_on_another_thread() -> None:
        beside["shape"] = tuple(predictor._get_orig_video_res_output(state, low)[1].shape)

    with predictor.low_res_output():
        _, _, masks = next(iter(predictor.propagate_in_video(state)))
        other = threading.Thread(target=resize_on_another_thread)
        other.start()
        other.join()
    assert tuple(masks.shape) == (1, 1, 64, 64)  # the decoder's resolution (image_size / 4)
    assert beside["shape"] == (2, 1, 96, 128)  # another thread still resizes
    assert tuple(predictor._get_orig_video_res_output(state, low)[1].shape) == (2, 1, 96, 128)


def test_lazy_frames_equal_sam2_loader(small_model, synth_root: Path) -> None:
    from sam2.utils.misc import load_video_frames

    folder = synth_root / "JPEGImages/480p/synth-000"
    images, h, w = load_video_frames(str(folder), image_size=256, offload_video_to_cpu=True)
    ds = open_dataset(DatasetConfig(name="s", root=synth_root))
    frames = Sam2Frames(ds.frames("synth-000"), 256)
    assert (h, w) == (96, 128) and len(frames) == images.shape[0]
    for i in range(len(frames)):
        torch.testing.assert_close(frames[i], images[i], rtol=0, atol=0)


def test_inference_state_keys_match_sam2(small_model, synth_root: Path) -> None:
    """The engine mirrors sam2 1.1.0's init_state: a sam2 upgrade that changes it fails here."""
    predictor = small_model.predictor
    stock = predictor.init_state(str(synth_root / "JPEGImages/480p/synth-000"))
    ds = open_dataset(DatasetConfig(name="s", root=synth_root))
    ours = predictor.init_state_from_frames(ds.frames("synth-000"))
    assert set(ours) == set(stock)
    for key in ("num_frames", "video_height", "video_width"):
        assert ours[key] == stock[key]


def test_bad_prompts(small_model, synth_root: Path) -> None:
    ds = open_dataset(DatasetConfig(name="s", root=synth_root))
    session = PropagationSession(small_model, ds.frames("synth-000"))
    with pytest.raises(InputError, match="expected a mask of 96x128"):
        session.add_prompt(ObjectPrompt(1, 0, np.zeros((10, 10), bool)))
    with pytest.raises(InputError, match="frame 9"):
        session.add_prompt(ObjectPrompt(1, 9, np.zeros((96, 128), bool)))
    with pytest.raises(InputError, match="no prompts"):
        next(session.propagate())


def test_entropy_and_stability_are_those_of_the_mask_the_decoder_returned(
    small_model, synth_root: Path
) -> None:
    """The hooks keep the chosen mask's logits and the assembler computes their entropy and
    stability later, for all objects at once (three here): the same numbers as computed from
    the decoder's own output, call by call."""
    from usam_video.engine.capture import mask_entropy, stability_score

    ds = open_dataset(DatasetConfig(name="s", root=synth_root))
    returned: list[torch.Tensor] = []

    def on_decoder(module: torch.nn.Module, args: object, kwargs: dict, output: tuple) -> None:
        masks, ious = output[0], output[1]
        pick = (
            torch.argmax(ious, dim=-1)
            if masks.shape[1] > 1
            else torch.zeros(masks.shape[0], dtype=torch.long)
        )
        returned.append(masks[torch.arange(masks.shape[0]), pick].clone())

    handle = small_model.predictor.sam_mask_decoder.register_forward_hook(on_decoder, with_kwargs=True)
    try:
        session = PropagationSession(small_model, ds.frames("synth-002"))
        for prompt in ds.prompts("synth-002"):
            session.add_prompt(prompt)
        records = list(session.propagate())[1:]  # the prompt frame's outputs are the prompts'
    finally:
        handle.remove()
    # sam2 1.1.0: one call per object and frame, in object order; the last ones are propagation's
    logits = torch.cat(returned[-3 * len(records) :]).reshape(len(records), 3, *returned[-1].shape[1:])
    for record, frame_logits in zip(records, logits, strict=True):
        assert len(record.object_ids) == 3
        np.testing.assert_allclose(record.entropy, mask_entropy(frame_logits).numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(record.stability, stability_score(frame_logits).numpy(), rtol=0, atol=1e-6)
        assert np.ptp(record.entropy) > 0  # three different masks, not one value repeated
