"""train-model on a dataset, a release included (issue #34, part 1): the clips know which
frame-objects the release left out, those give no loss and never prompt, and the checkpoint's
record says what it was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import CONFIGS, REPO_ROOT
from usam_video.config import DatasetConfig, TrainingRecipe, TrainModelConfig
from usam_video.datasets import open_dataset
from usam_video.datasets.clips import DatasetClips
from usam_video.hashing import file_sha256
from usam_video.pipeline.release import release_store
from usam_video.release import MANIFEST, ReleasePolicy, select_video
from usam_video.store import PseudoLabelStore

# A threshold on iou_video that leaves a mix of released and unreleased pseudo-labels (as the
# release tests use).
POLICY = ReleasePolicy(score="iou_video", threshold=0.9)
MICRO_SAM2 = CONFIGS / "models" / "sam2_micro_128.yaml"
MICRO_WEIGHTS = REPO_ROOT / "usam_video" / "weights" / "sam2_micro_128.pt"


@pytest.fixture(scope="module")
def sav_release(micro_store: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train-release") / "sav"
    release_store(micro_store, "sav", out, policy=POLICY)
    return out


def _release_dataset(root: Path) -> DatasetConfig:
    return DatasetConfig(name="release", format="sav", layout="release", root=root)


def test_clips_know_exactly_the_released_frame_objects(micro_store: Path, sav_release: Path) -> None:
    store = PseudoLabelStore.open(micro_store, "r")
    reader = open_dataset(_release_dataset(sav_release))
    clips = DatasetClips(reader, reader.list_videos(), TrainingRecipe(clip_frames=4, max_objects=3))
    selections = {v: select_video(store.frame_table(v), POLICY, v) for v in store.videos()}
    unknown = 0
    for step in range(12):
        clip = clips(step)
        again = clips(step)  # the same step draws the same clip (a resumed training sees it)
        assert again.frame_indices == clip.frame_indices and again.object_ids == clip.object_ids
        sel = selections[clip.video_id]
        columns = [sel.object_ids.index(o) for o in clip.object_ids]
        for i, t in enumerate(clip.frame_indices):
            stored = store.read_masks(clip.video_id, t)
            for n, k in enumerate(columns):
                assert clip.known[i, n] == sel.released[t, k], (step, t, n)
                drawn = clip.labels[i] == n + 1
                if not clip.known[i, n]:
                    unknown += 1
                    assert not drawn.any()  # an unreleased mask is never a label
                else:
                    assert not (drawn & ~stored[k]).any()  # a label is the released mask
        # frame 0 prompts every object: known and visible there
        assert clip.known[0].all()
        assert all((clip.labels[0] == n + 1).any() for n in range(len(columns)))
    assert unknown > 0  # the release left some out of these clips


def _micro():
    from usam_video.config import ModelConfig
    from usam_video.engine import build_model

    return build_model(
        ModelConfig(name="micro", sam2_config=str(MICRO_SAM2), checkpoint=MICRO_WEIGHTS, device="cpu")
    ).predictor


def test_an_unknown_label_gives_no_loss(sav_release: Path) -> None:
    """Whatever the label of a frame-object the release left out, the loss is the same."""
    from usam_video.engine.train_sam2 import _clip_step, _clip_tensors, _DecoderTap

    reader = open_dataset(_release_dataset(sav_release))
    clips = DatasetClips(reader, reader.list_videos(), TrainingRecipe(clip_frames=4, correction_prob=0.0))
    clip = next(c for c in (clips(s) for s in range(40)) if not c.known.all())
    model = _micro()
    model.train()
    images, targets, known = _clip_tensors(clip, int(model.image_size), torch.device("cpu"))
    assert not bool(known.all())
    losses = []
    for fill in (0.0, 1.0):
        changed = torch.where(known[:, :, None, None] > 0, targets, torch.full_like(targets, fill))
        torch.manual_seed(0)
        _, feats, pos, sizes = model._prepare_backbone_features(model.forward_image(images))
        tap = _DecoderTap(model.sam_mask_decoder)
        try:
            loss, _ = _clip_step(
                model, clips.recipe, np.random.default_rng(0), feats, pos, sizes, changed, tap, known
            )
        finally:
            tap.close()
        losses.append(float(loss.detach()))
    assert losses[0] == losses[1]
    assert np.isfinite(losses[0]) and losses[0] > 0


def test_train_model_fine_tunes_micro_on_a_release_and_records_it(sav_release: Path, tmp_path: Path) -> None:
    from usam_video.config import ModelConfig
    from usam_video.engine import build_model
    from usam_video.pipeline.train_model import train_model

    config = TrainModelConfig(
        name="micro_release",
        sam2_config=str(MICRO_SAM2),
        init_weights=MICRO_WEIGHTS,
        recipe=TrainingRecipe(steps=2, clip_frames=3, image_fraction=0.5, warmup_steps=0),
        dataset=_release_dataset(sav_release),
        state=tmp_path / "state.pt",
        weights=tmp_path / "micro_release.pt",
        threads=1,
    )
    result = train_model(config, log=lambda _: None)
    assert result.finished and result.steps_done == 2
    payload = torch.load(config.weights, map_location="cpu", weights_only=True)
    record = json.loads(payload["training"])
    assert record["data"]["source"] == "dataset"
    assert record["data"]["release"]["manifest_sha256"] == file_sha256(sav_release / MANIFEST)
    assert record["data"]["release"]["policy"]["score"] == "iou_video"
    assert record["init"] is not None  # fine-tuned from micro's own record
    # a model config loads the student
    built = build_model(
        ModelConfig(name="student", sam2_config=str(MICRO_SAM2), checkpoint=config.weights, device="cpu")
    )
    assert not built.untrained


def test_a_clip_with_an_object_unknown_on_its_prompt_frame_is_refused() -> None:
    from usam_video.engine.train_sam2 import _clip_tensors
    from usam_video.errors import InputError

    labels = np.zeros((3, 8, 8), np.uint8)
    labels[:, 2:5, 2:5] = 1
    known = np.ones((3, 1), bool)
    known[0, 0] = False
    clip = type("Clip", (), {"frames": np.zeros((3, 8, 8, 3), np.uint8), "labels": labels, "known": known})
    with pytest.raises(InputError, match="known on frame 0"):
        _clip_tensors(clip, 32, torch.device("cpu"))


def test_the_shipped_config_reads_a_release_and_names_it(sav_release: Path, monkeypatch) -> None:
    from usam_video.config import load_train_model_config
    from usam_video.pipeline.train_model import training_data

    monkeypatch.setenv("RELEASE", str(sav_release))
    config = load_train_model_config(CONFIGS / "training" / "micro-on-release.yaml")
    assert config.dataset is not None and Path(config.dataset.root) == sav_release
    assert config.init_weights == MICRO_WEIGHTS
    clips, data = training_data(config)
    assert data["videos"] == 3 and data["release"]["release"] >= 1
    assert clips(0).known.shape[0] <= config.recipe.clip_frames
