"""The committed SAM 2 models and USAM heads really segment and really score (CPU, a few
fixed generated videos from the "test" seed stream, which no model or head was trained on).

Floors sit a little under the figures of usam_video/weights/MODEL_CARD.md, measured on more
videos; a regression in training, in the engine or in the scoring path shows up here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from usam_video.config import (
    DatasetConfig,
    HeadsConfig,
    RunConfig,
    TrainingRecipe,
    load_model_config,
    load_policy_config,
    load_train_model_config,
)
from usam_video.datasets.synthetic import generated_specs, write_davis_dataset

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "usam_video" / "weights"
MODELS = REPO / "configs" / "models"

# Floors a little under what these four videos gave when the models were committed (micro 0.883,
# tiny 0.926, copying the first mask 0.259; the model card's 12 validation videos: micro 0.614,
# tiny 0.799). Per object the models are bimodal (an object is tracked or lost), so a few videos
# move the mean in steps; the figures on fixed videos and weights are deterministic on a CPU.
MICRO_JF_FLOOR = 0.80
TINY_JF_FLOOR = 0.85
# Pearson correlation with the true IoU on these 4 videos: the IoU video head (tokens + video
# features) above 0.3, the token-only head iou_micro 0.08 (0.43 on the heads' 24 held-out videos: four
# short videos hold few failures). The test asks the video head for a clearly positive one and
# the token head for a positive one.
IOU_PEARSON_FLOOR = {"iou_video": 0.3, "iou_micro": 0.0}


@pytest.fixture(scope="module")
def generated_videos(tmp_path_factory) -> DatasetConfig:
    root = tmp_path_factory.mktemp("generated-test")
    names = write_davis_dataset(root, generated_specs("test", 4, num_frames=16), split="test")
    return DatasetConfig(name="generated-test", root=root, videos=names)


@pytest.fixture(scope="module")
def micro_store(generated_videos: DatasetConfig, tmp_path_factory) -> Path:
    from usam_video.pipeline import label_dataset

    store = tmp_path_factory.mktemp("micro") / "store.zarr"
    run = RunConfig(
        name="trained-micro",
        dataset=generated_videos,
        model=load_model_config(MODELS / "micro.yaml"),
        heads=HeadsConfig(directory=WEIGHTS / "heads-micro", token_dim=128),
        policy=load_policy_config(REPO / "configs" / "policies" / "trained.yaml"),
        store=str(store),
    )
    label_dataset(run)
    return store


@pytest.fixture(scope="module")
def micro_jf(generated_videos: DatasetConfig, micro_store: Path) -> float:
    from usam_video.pipeline import evaluate_predictions

    result = evaluate_predictions(micro_store, generated_videos, random_seed=None)
    assert result.jf is not None
    return float(result.jf.jf_mean)


def test_weights_are_small_and_match_their_recipes() -> None:
    files = [p for p in WEIGHTS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 30 * 2**20
    # micro ships its one stage; tiny its second stage, started from its first stage's export.
    for name in ("micro", "tiny-ft"):
        config = load_train_model_config(REPO / "configs" / "training" / f"{name}.yaml")
        payload = torch.load(config.weights, map_location="cpu", weights_only=True)
        training = json.loads(payload["training"])
        # The committed weights are the result of the committed recipe, run to its end.
        assert TrainingRecipe(**training["recipe"]) == config.recipe
        assert training["steps"] == config.recipe.steps
        if config.init_weights is not None:
            first = load_train_model_config(REPO / "configs" / "training" / "tiny.yaml")
            assert TrainingRecipe(**training["init"]["recipe"]) == first.recipe
            assert training["init"]["steps"] == first.recipe.steps
    assert (WEIGHTS / "MODEL_CARD.md").is_file()


@pytest.fixture(scope="module")
def baseline_jf(generated_videos: DatasetConfig) -> float:
    from usam_video.pipeline.train_model import copy_first_mask_jf

    return copy_first_mask_jf(generated_videos)


def test_micro_tracks_better_than_copying_the_first_mask(micro_jf: float, baseline_jf: float) -> None:
    assert micro_jf >= MICRO_JF_FLOOR
    assert micro_jf > baseline_jf + 0.1


def test_tiny_tracks_better_than_micro_and_the_baseline(
    generated_videos: DatasetConfig, micro_jf: float, baseline_jf: float
) -> None:
    from usam_video.pipeline.train_model import model_jf

    tiny = model_jf(load_model_config(MODELS / "tiny.yaml"), generated_videos)
    assert tiny >= TINY_JF_FLOOR
    assert tiny > baseline_jf + 0.1
    # The larger model is the better one (the model gap and the refine route rely on it).
    assert tiny > micro_jf


@pytest.mark.parametrize("head", sorted(IOU_PEARSON_FLOOR))
def test_usam_iou_head_correlates_with_true_iou(
    head: str, generated_videos: DatasetConfig, micro_store: Path
) -> None:
    from usam_video.datasets import open_dataset
    from usam_video.store import PseudoLabelStore
    from usam_video.types import Status

    store = PseudoLabelStore.open(micro_store, mode="r")
    reader = open_dataset(generated_videos)
    predicted, true = [], []
    for video_id in store.videos():
        table = store.frame_table(video_id)
        column = table.score_names.index(head)
        for frame in reader.annotated_frames(video_id)[1:]:
            gt = reader.ground_truth(video_id, frame)
            assert gt is not None
            masks = store.read_masks(video_id, frame)
            for o, object_id in enumerate(table.object_ids):
                if table.status[frame, o] == Status.NOT_STARTED:
                    continue
                target = gt.masks[gt.object_ids.index(object_id)] if object_id in gt.object_ids else None
                if target is None or not target.any():
                    continue
                union = (masks[o] | target).sum()
                true.append((masks[o] & target).sum() / union)
                predicted.append(table.scores[frame, o, column])
    assert len(true) > 50
    assert np.corrcoef(predicted, true)[0, 1] > IOU_PEARSON_FLOOR[head]


def test_video_head_ranks_masks_better_than_every_baseline(
    generated_videos: DatasetConfig, micro_store: Path
) -> None:
    """On held-out videos the IoU video head correlates with the true IoU more than SamScore,
    stability, entropy and the object score do (the issue measured it 0.08+ ahead in relative AUC)."""
    from usam_video.datasets import open_dataset
    from usam_video.score_registry import to_uncertainty
    from usam_video.store import PseudoLabelStore
    from usam_video.types import Status

    store = PseudoLabelStore.open(micro_store, mode="r")
    reader = open_dataset(generated_videos)
    names = ("iou_video", "sam_iou", "stability", "entropy", "object_score")
    rows: dict[str, list[float]] = {n: [] for n in names}
    true: list[float] = []
    for video_id in store.videos():
        table = store.frame_table(video_id)
        for frame in reader.annotated_frames(video_id)[1:]:
            gt = reader.ground_truth(video_id, frame)
            masks = store.read_masks(video_id, frame)
            for o, object_id in enumerate(table.object_ids):
                if table.status[frame, o] == Status.NOT_STARTED or object_id not in gt.object_ids:
                    continue
                target = gt.masks[gt.object_ids.index(object_id)]
                union = (masks[o] | target).sum()
                true.append((masks[o] & target).sum() / union if union else 1.0)
                for n in names:
                    rows[n].append(float(table.scores[frame, o, table.score_names.index(n)]))
    # every score as a confidence (higher = better mask), correlated with the true IoU
    corr = {
        n: float(np.corrcoef(-to_uncertainty(n, np.array(v)), true)[0, 1]) for n, v in rows.items()
    }
    assert corr["iou_video"] > max(corr[n] for n in names[1:]), corr


def test_trained_configs_name_the_committed_files() -> None:
    for name in ("micro", "tiny"):
        config = load_model_config(MODELS / f"{name}.yaml")
        assert config.checkpoint is not None and config.checkpoint.is_file() and not config.random_init
    run = yaml.safe_load((REPO / "configs" / "runs" / "generated-val-micro.yaml").read_text())
    assert run["heads"]["token_dim"] == 128


def test_shipped_video_heads_read_exactly_the_columns_they_were_trained_on() -> None:
    """The engine's later features (``colour_to_cond``) are new stored columns at the end: the
    shipped video heads keep their 15 inputs, at the positions they had, and a change of any
    other column leaves their scores as they were."""
    from usam_video.heads import load_heads
    from usam_video.pipeline.train_heads import VIDEO_HEAD_FEATURES, VIDEO_HEAD_INPUTS, VIDEO_HEADS
    from usam_video.score_registry import VIDEO_FEATURES
    from usam_video.scoring import BASELINE_SCORES, Scorer

    trained_on = ("prev_iou", "area_prev_ratio", "area_cond_ratio", "overlap_others", "ptr_cos_cond",
                  "object_score_trend", "frames_since_cond", "area_fraction", "min_prev_iou_since_cond",
                  "max_overlap_since_cond", "min_area_cond_ratio_since_cond")  # fmt: skip
    assert VIDEO_HEAD_FEATURES == trained_on and VIDEO_HEAD_INPUTS == BASELINE_SCORES + trained_on
    assert VIDEO_FEATURES[: len(trained_on)] == trained_on and "colour_to_cond" in VIDEO_FEATURES
    directories = sorted(p for p in WEIGHTS.glob("heads-*") if (p / "manifest.json").is_file())
    assert directories, "no shipped heads"
    for directory in directories:
        manifest = json.loads((directory / "manifest.json").read_text())
        for name in VIDEO_HEADS:
            assert tuple(manifest["heads"][name]["inputs"]) == VIDEO_HEAD_INPUTS, (directory.name, name)

    scorer = Scorer(load_heads(WEIGHTS / "heads-micro", token_dim=128))
    o, k, d = 6, 4, 128
    gen = torch.Generator().manual_seed(0)
    inputs = {
        "iou_tokens": torch.randn(o, d, generator=gen),
        "mask_tokens": torch.randn(o, k, d, generator=gen),
        "candidate_ious": torch.rand(o, k, generator=gen),
        "chosen": torch.tensor([0, 1, 2, 3, 1, 0]),
        "object_score_logits": torch.randn(o, generator=gen),
        "entropy": torch.rand(o, generator=gen),
        "stability": torch.rand(o, generator=gen),
    }
    features = torch.rand(o, len(VIDEO_FEATURES), generator=gen)
    video = [scorer.names.index(n) for n in VIDEO_HEADS]

    def video_scores(f: torch.Tensor) -> np.ndarray:
        return scorer.score_tensors(**inputs, video_features=f)[0][:, video].numpy()

    before = video_scores(features)
    for i, name in enumerate(VIDEO_FEATURES):
        changed = features.clone()
        changed[:, i] += 5.0
        moved = np.abs(video_scores(changed) - before).max()
        if name in trained_on:
            assert moved > 1e-4, name  # an input they read moves them
        else:
            assert moved == 0.0, name  # a column they were not trained on is never read
