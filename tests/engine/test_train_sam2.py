"""Training SAM 2 on generated clips with the sam2 modules' own steps (engine/train_sam2.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

from usam_video.config import ModelConfig, TrainingRecipe, TrainModelConfig
from usam_video.datasets.rendering import generated_specs, training_clip, training_clip_spec
from usam_video.engine import build_model
from usam_video.engine.train_sam2 import _clip_step, _DecoderTap, train_sam2
from usam_video.errors import InputError

REPO = Path(__file__).resolve().parents[2]
MICRO = REPO / "configs" / "models" / "sam2_micro_128.yaml"


def _model(seed: int = 0):
    return build_model(
        ModelConfig(name="m", sam2_config=str(MICRO), random_init=True, seed=seed, device="cpu")
    )


def _train(model, recipe: TrainingRecipe, checkpoint: Path, **kwargs):
    """``train_sam2`` on the generated clips of ``recipe`` (as ``pipeline.train_model`` runs it)."""
    return train_sam2(model, recipe, checkpoint, partial(training_clip, recipe), **kwargs)


def test_clip_specs_are_deterministic_and_disjoint_from_generated_sets() -> None:
    recipe = TrainingRecipe(steps=10)
    assert training_clip_spec(recipe, 3) == training_clip_spec(recipe, 3)
    train_seeds = {training_clip_spec(recipe, step).seed for step in range(500)}
    assert len(train_seeds) == 500
    for purpose in ("val", "heads", "test"):
        assert not train_seeds & {s.seed for s in generated_specs(purpose, 200)}


def test_a_few_steps_train_and_resume(tmp_path: Path) -> None:
    recipe = TrainingRecipe(steps=4, image_fraction=0.25, clip_frames=4, warmup_steps=1)
    built = _model()
    before = {k: v.clone() for k, v in built.predictor.state_dict().items()}
    state = _train(built.predictor, recipe, tmp_path / "state.pt", max_seconds=None, log=lambda s: None)
    assert state.step == 4 and state.history and torch.isfinite(torch.tensor(state.history[-1]["loss"]))
    after = built.predictor.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    # Every part of the model learns: trunk, neck, memory attention and encoder, decoder.
    for part in (
        "image_encoder.trunk",
        "image_encoder.neck",
        "memory_attention",
        "memory_encoder",
        "sam_mask_decoder",
    ):
        assert any(k.startswith(part) for k in changed), part
    # Resuming a finished run does no more steps; a longer recipe is refused (different recipe).
    again = _train(_model().predictor, recipe, tmp_path / "state.pt", log=lambda s: None)
    assert again.step == 4
    with pytest.raises(InputError, match="state.pt.*same recipe"):
        _train(_model().predictor, TrainingRecipe(steps=5), tmp_path / "state.pt", log=lambda s: None)


def test_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    recipe = TrainingRecipe(steps=3, image_fraction=0.0, clip_frames=3, warmup_steps=1)
    straight = _model()
    _train(straight.predictor, recipe, tmp_path / "a.pt", log=lambda s: None)
    first = _train(_model().predictor, recipe, tmp_path / "b.pt", stop_at=1, log=lambda s: None)
    assert first.step == 1
    # Another process (a fresh model) resumes from the checkpoint and finishes the recipe.
    resumed = _model(seed=5)
    assert _train(resumed.predictor, recipe, tmp_path / "b.pt", log=lambda s: None).step == 3
    resumed_state = resumed.predictor.state_dict()
    for name, value in straight.predictor.state_dict().items():
        assert torch.allclose(value, resumed_state[name], atol=1e-6), name


def _clip_step_backward(model, recipe: TrainingRecipe) -> None:
    """One clip step of ``recipe``'s first clip on ``model`` (train mode), then backward."""
    import numpy as np
    import torch.nn.functional as F

    from usam_video.engine.predictor import preprocess_frames

    model.train()
    video = training_clip(recipe, 0)
    labels = torch.from_numpy(video.labels)
    targets = torch.stack([(labels == o + 1).float() for o in range(int(labels.max()))])
    targets = F.interpolate(targets, size=(model.image_size,) * 2, mode="nearest")
    images = preprocess_frames(video.frames, model.image_size)
    _, feats, pos, sizes = model._prepare_backbone_features(model.forward_image(images))
    tap = _DecoderTap(model.sam_mask_decoder)
    try:
        known = torch.ones(targets.shape[:2])
        loss, _ = _clip_step(model, recipe, np.random.default_rng(0), feats, pos, sizes, targets, tap, known)
        loss.backward()
    finally:
        tap.close()


def test_masks_learn_while_the_object_score_says_absent() -> None:
    # sam2 replaces the masks of an object scored absent by -1024 (no gradient); the losses read
    # the decoder's ungated masks, so the mask path still learns from the first step.
    model = _model().predictor
    torch.nn.init.constant_(model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias, -50.0)
    _clip_step_backward(
        model, TrainingRecipe(steps=1, clip_frames=3, mask_prompt_prob=0.0, box_prompt_prob=1.0)
    )
    grad = model.sam_mask_decoder.output_hypernetworks_mlps[0].layers[0].weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_train_model_exports_weights_sam2_loads(tmp_path: Path) -> None:
    from usam_video.pipeline.train_model import train_model

    config = TrainModelConfig(
        name="micro",
        sam2_config=str(MICRO),
        recipe=TrainingRecipe(steps=2, image_fraction=0.5, clip_frames=3, warmup_steps=1),
        state=tmp_path / "state.pt",
        weights=tmp_path / "weights.pt",
        threads=1,
    )
    result = train_model(config, log=lambda s: None)
    assert result.finished and result.steps_done == 2
    payload = torch.load(tmp_path / "weights.pt", map_location="cpu", weights_only=True)
    assert set(payload) == {"model", "training"}
    assert all(v.dtype in (torch.float16, torch.int64, torch.bool) for v in payload["model"].values())
    loaded = build_model(
        ModelConfig(name="m", sam2_config=str(MICRO), checkpoint=tmp_path / "weights.pt", device="cpu")
    )
    state = torch.load(tmp_path / "state.pt", map_location="cpu", weights_only=True)["model"]
    for name, value in loaded.predictor.state_dict().items():
        assert torch.allclose(value, state[name].to(value.dtype), atol=2e-3, rtol=2e-3), name


def test_train_model_stopped_early_exports_nothing(tmp_path: Path) -> None:
    from usam_video.pipeline.train_model import train_model

    config = TrainModelConfig(
        name="micro",
        sam2_config=str(MICRO),
        recipe=TrainingRecipe(steps=50, clip_frames=3),
        state=tmp_path / "state.pt",
        weights=tmp_path / "weights.pt",
    )
    result = train_model(config, max_minutes=0.0, log=lambda s: None)
    assert not result.finished and not (tmp_path / "weights.pt").exists()


def test_recipe_rejects_bad_prompt_mix() -> None:
    with pytest.raises(ValueError, match="mask_prompt_prob \\+ box_prompt_prob"):
        TrainingRecipe(mask_prompt_prob=0.8, box_prompt_prob=0.5)


def test_first_frame_mask_is_decoded_and_trains_the_mask_prompt_path() -> None:
    # The trained configs decode a first-frame mask (use_mask_input_as_output_without_sam off):
    # the frame gives a loss and the prompt encoder's mask path receives gradient.
    model = _model().predictor
    assert model.use_mask_input_as_output_without_sam is False
    _clip_step_backward(
        model, TrainingRecipe(steps=1, clip_frames=2, mask_prompt_prob=1.0, box_prompt_prob=0.0)
    )
    grad = model.sam_prompt_encoder.mask_downscaling[0].weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_a_second_stage_starts_from_the_first_stage_export(tmp_path: Path) -> None:
    import json

    from usam_video.pipeline.train_model import train_model

    first = TrainModelConfig(
        name="micro",
        sam2_config=str(MICRO),
        recipe=TrainingRecipe(steps=1, image_fraction=1.0, clip_frames=2, warmup_steps=1),
        state=tmp_path / "s1.pt",
        weights=tmp_path / "stage1.pt",
    )
    train_model(first, log=lambda s: None)
    second = TrainModelConfig(
        name="micro",
        sam2_config=str(MICRO),
        init_weights=tmp_path / "stage1.pt",
        recipe=TrainingRecipe(
            steps=1, image_fraction=0.0, clip_frames=2, picked_weight=1.0, lr=1e-12, min_lr=0
        ),
        state=tmp_path / "s2.pt",
        weights=tmp_path / "final.pt",
    )
    train_model(second, log=lambda s: None)
    final = torch.load(tmp_path / "final.pt", map_location="cpu", weights_only=True)
    stage1 = torch.load(tmp_path / "stage1.pt", map_location="cpu", weights_only=True)
    # A near-zero learning rate: the second stage's weights are the first stage's.
    name = "sam_mask_decoder.iou_token.weight"
    assert torch.allclose(final["model"][name].float(), stage1["model"][name].float(), atol=1e-3)
    metadata = json.loads(final["training"])
    assert metadata["recipe"]["picked_weight"] == 1.0 and metadata["init"]["steps"] == 1
    bad = second.model_copy(update={"init_weights": tmp_path / "s1.pt.missing"})
    with pytest.raises(InputError, match="s1.pt.missing: expected the weights of the previous"):
        train_model(bad, log=lambda s: None)
