"""Training configs: a SAM 2 model on generated clips (``train-model``) and USAM heads on the
video tokens of a dataset with ground truth (``train-heads``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from usam_video.config.base import StrictModel
from usam_video.config.dataset import DatasetConfig
from usam_video.config.model import ModelConfig

__all__ = ["TrainingRecipe", "TrainModelConfig", "TrainModelSpec", "TrainHeadsConfig"]


class TrainingRecipe(StrictModel):
    """How to train one SAM 2 model on generated clips (see ``usam_video/engine/train_sam2.py``).

    The defaults are the recipe of the committed "micro" and "tiny" models (their model card).
    """

    steps: int = Field(default=6000, ge=1)
    clip_frames: int = Field(default=8, ge=2, le=64)
    height: int = Field(default=96, ge=32)
    width: int = Field(default=128, ge=32)
    max_objects: int = Field(default=3, ge=1, le=8)
    image_fraction: float = Field(default=0.15, ge=0, le=1, description="first steps on single frames")
    lr: float = Field(default=8e-4, gt=0)
    min_lr: float = Field(default=2e-5, ge=0)
    warmup_steps: int = Field(default=150, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    focal_weight: float = Field(default=20.0, ge=0)
    dice_weight: float = Field(default=1.0, ge=0)
    iou_weight: float = Field(default=1.0, ge=0)
    picked_weight: float = Field(
        default=0.0,
        ge=0,
        description="mask loss on the candidate of highest predicted IoU too (the one sam2 keeps)",
    )
    feature_scale_weight: float = Field(
        default=0.1,
        ge=0,
        description="penalty on the image embedding's mean square above 1 (keeps prompts audible)",
    )
    iou_loss: Literal["mse", "l1"] = Field(
        default="mse", description="squared error ranks candidates by their mean IoU; l1 by the median"
    )
    object_weight: float = Field(default=1.0, ge=0)
    mask_prompt_prob: float = Field(default=0.5, ge=0, le=1)
    box_prompt_prob: float = Field(default=0.25, ge=0, le=1)
    correction_prob: float = Field(default=0.4, ge=0, le=1)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _prompt_probabilities(self) -> TrainingRecipe:
        if self.mask_prompt_prob + self.box_prompt_prob > 1.0:
            raise ValueError(
                "mask_prompt_prob + box_prompt_prob: expected <= 1 (the rest are clicks), got "
                f"{self.mask_prompt_prob + self.box_prompt_prob}"
            )
        return self


class TrainModelConfig(StrictModel):
    """Training one of the project's own SAM 2 models (``train-model``) on generated videos, or
    fine-tuning one on a dataset (``dataset``), e.g. a release of curated pseudo-labels."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="e.g. 'micro'")
    sam2_config: str = Field(description="the architecture, a sam2-format YAML (configs/models/sam2_*.yaml)")
    init_seed: int = Field(default=0, ge=0, description="seed of the random initial weights")
    init_weights: Path | None = Field(
        default=None, description="start from these weights (an earlier stage's export) instead of random"
    )
    recipe: TrainingRecipe = Field(default_factory=TrainingRecipe)
    dataset: DatasetConfig | None = Field(
        default=None,
        description="train on this dataset's annotated frames (DAVIS or SA-V layout, a release "
        "included: a frame-object it leaves out gives no loss) instead of generated clips",
    )
    state: Path = Field(description="resumable training checkpoint (weights, optimizer, step)")
    weights: Path = Field(description="the exported weights, {'model': float16 state dict}")
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads; default torch's")


class TrainModelSpec(StrictModel):
    """A model whose masks give targets: ``iou_<label>`` is the true IoU of its masks."""

    label: str = Field(pattern=r"^[a-z0-9_]+$", description="e.g. 'tiny' gives the target iou_tiny")
    model: ModelConfig


class TrainHeadsConfig(StrictModel):
    """Training USAM heads on the video tokens of a dataset with ground truth.

    The first model is the one whose tokens are recorded (the heads score its tokens); a
    second, larger model gives ``iou_<label>`` and ``model_gap`` targets.
    """

    name: str
    dataset: DatasetConfig
    models: list[TrainModelSpec] = Field(min_length=1, max_length=2)
    container: str = Field(description="path of the Zarr training container (reused across runs)")
    heads_out: Path = Field(description="directory the heads are written to (official format)")
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    epochs: int = Field(default=60, ge=1)
    batch_size: int = Field(default=64, ge=1)
    val_fraction: float = Field(default=0.25, gt=0, lt=1)
    seed: int = 0
    dense_points: int = Field(
        default=8, ge=1, description="clicks of the dense prompt (1 centre + rest sampled)"
    )
    erosion: int = Field(
        default=3, ge=0, description="pixels the ground truth is eroded by before sampling clicks"
    )

    @model_validator(mode="after")
    def _distinct_labels(self) -> TrainHeadsConfig:
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"model labels must differ, got {labels}")
        if any(label == "unsupervised" or label == "dense_prompt" for label in labels):
            raise ValueError("labels 'unsupervised' and 'dense_prompt' name other targets")
        return self

    @property
    def container_path(self) -> Path:
        return Path(self.container.removeprefix("file://"))
