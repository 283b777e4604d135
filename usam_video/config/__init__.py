"""Typed configuration: YAML files under ``configs/`` validated by pydantic models.

Our configs are deliberately not Hydra (importing ``sam2`` initialises Hydra globally, and a
second global config system would fight it). Unknown keys are errors (``extra="forbid"``) so a
typo never silently falls back to a default. Relative paths inside a YAML file are resolved
against that file's folder, so a config means the same thing from any working directory.

One module per job, lowest first (none imports one above it):

* :mod:`~usam_video.config.base`: the strict, frozen base model.
* :mod:`~usam_video.config.dataset`, :mod:`~usam_video.config.model` (SAM 2 model and heads),
  :mod:`~usam_video.config.policy`, :mod:`~usam_video.config.run`,
  :mod:`~usam_video.config.training`: the models, by area.
* :mod:`~usam_video.config.reading`: one YAML file read, its ``$VARS`` and paths resolved,
  validated, errors naming the file.
* :mod:`~usam_video.config.loading`: one loader per config kind (a run is parsed once per
  process by :mod:`usam_video.pipeline.context`, so none is cached).
* :mod:`~usam_video.config.self_train`: the semi-supervised experiment (``self-train``).
* :mod:`~usam_video.config.fingerprint`: :func:`config_fingerprint`.
"""

from __future__ import annotations

from usam_video.config.dataset import DatasetConfig
from usam_video.config.fingerprint import config_fingerprint
from usam_video.config.loading import (
    load_dataset_config,
    load_heads_config,
    load_model_config,
    load_policy_config,
    load_run_config,
    load_self_train_config,
    load_train_heads_config,
    load_train_model_config,
    load_yaml_model,
)
from usam_video.config.model import HeadsConfig, ModelConfig
from usam_video.config.policy import (
    HumanBudget,
    ModelRefinement,
    PolicyConfig,
    PolicyRule,
    ReviewPlanConfig,
)
from usam_video.config.run import RunConfig
from usam_video.config.self_train import GeneratedSet, SelfTrainConfig
from usam_video.config.training import (
    TrainHeadsConfig,
    TrainingRecipe,
    TrainModelConfig,
    TrainModelSpec,
)

__all__ = [
    "DatasetConfig",
    "ModelConfig",
    "HeadsConfig",
    "PolicyRule",
    "HumanBudget",
    "ReviewPlanConfig",
    "ModelRefinement",
    "PolicyConfig",
    "RunConfig",
    "load_dataset_config",
    "load_model_config",
    "load_heads_config",
    "load_policy_config",
    "load_run_config",
    "TrainModelSpec",
    "TrainHeadsConfig",
    "TrainingRecipe",
    "TrainModelConfig",
    "load_train_heads_config",
    "load_train_model_config",
    "config_fingerprint",
    "load_yaml_model",
    "GeneratedSet",
    "SelfTrainConfig",
    "load_self_train_config",
]
