"""One loader per config kind: read a YAML file, resolve its relative paths against the file's
folder (nested config files included) and validate it (:mod:`usam_video.config.reading`).

A run is parsed once per process and run (:mod:`usam_video.pipeline.context` keeps what it
builds from it), so nothing here is cached: every load reads the files as they are now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from usam_video.config.dataset import DatasetConfig
from usam_video.config.model import HeadsConfig, ModelConfig
from usam_video.config.policy import PolicyConfig
from usam_video.config.reading import naming_unset_variables, read_yaml, resolve_paths, validate_config
from usam_video.config.run import RunConfig
from usam_video.config.self_train import SelfTrainConfig
from usam_video.config.training import TrainHeadsConfig, TrainModelConfig

__all__ = [
    "load_dataset_config",
    "load_model_config",
    "load_heads_config",
    "load_policy_config",
    "load_yaml_model",
    "load_run_config",
    "load_train_model_config",
    "load_train_heads_config",
    "load_self_train_config",
]

_T = TypeVar("_T", bound=BaseModel)


def _dataset_data(data: dict[str, Any], base: Path) -> dict[str, Any]:
    return resolve_paths(data, base, ("root", "prompts"))


def _load_dataset_entry(data: dict[str, Any], base: Path) -> None:
    """Replace ``data["dataset"]``, a path (relative to ``base``) of a dataset YAML or an inline
    mapping, by the loaded config or the mapping with its paths resolved."""
    dataset = data.get("dataset")
    if isinstance(dataset, str):
        dataset_path = resolve_paths({"dataset": dataset}, base, ("dataset",))["dataset"]
        data["dataset"] = load_dataset_config(Path(dataset_path))
    elif isinstance(dataset, dict):
        data["dataset"] = _dataset_data(dataset, base)


def _load_entries(data: dict[str, Any], base: Path, keys: tuple[str, ...]) -> None:
    """Replace each of ``keys`` (``dataset``, ``model``, ``heads``, ``policy``) of ``data`` that is
    a path (relative to ``base``) by the config loaded from it, and each inline mapping by the
    mapping with its own paths resolved against ``base``."""
    loaders = {
        "dataset": (load_dataset_config, _dataset_data),
        "model": (load_model_config, _model_data),
        "heads": (load_heads_config, _heads_data),
        "policy": (load_policy_config, _policy_data),
    }
    for key in keys:
        load_file, resolve_inline = loaders[key]
        value = data.get(key)
        if isinstance(value, str):
            data[key] = load_file(Path(resolve_paths({key: value}, base, (key,))[key]))
        elif isinstance(value, dict):
            data[key] = resolve_inline(value, base)


def _model_data(data: dict[str, Any], base: Path) -> dict[str, Any]:
    out = resolve_paths(data, base, ("checkpoint",))
    cfg = out.get("sam2_config")
    # A sam2 package config name stays a name; anything that looks like a file path is
    # resolved against the YAML's folder.
    if isinstance(cfg, str) and not cfg.startswith("configs/") and cfg.endswith((".yaml", ".yml")):
        out = resolve_paths(out, base, ("sam2_config",))
    return out


def _heads_data(data: dict[str, Any], base: Path) -> dict[str, Any]:
    return resolve_paths(data, base, ("directory",))


def load_dataset_config(path: Path) -> DatasetConfig:
    """Load and validate a dataset YAML."""
    path = Path(path)
    with naming_unset_variables(path):
        return validate_config(DatasetConfig, _dataset_data(read_yaml(path), path.parent), path)


def load_model_config(path: Path) -> ModelConfig:
    """Load and validate a model YAML."""
    path = Path(path)
    with naming_unset_variables(path):
        return validate_config(ModelConfig, _model_data(read_yaml(path), path.parent), path)


def load_heads_config(path: Path) -> HeadsConfig:
    """Load and validate a heads YAML."""
    path = Path(path)
    with naming_unset_variables(path):
        return validate_config(HeadsConfig, _heads_data(read_yaml(path), path.parent), path)


def _policy_data(data: dict[str, Any], base: Path) -> dict[str, Any]:
    refinement = data.get("model_refinement")
    if isinstance(refinement, dict):
        model = refinement.get("model")
        if isinstance(model, str):
            model_path = Path(resolve_paths({"model": model}, base, ("model",))["model"])
            data = {**data, "model_refinement": {**refinement, "model": load_model_config(model_path)}}
        elif isinstance(model, dict):
            data = {**data, "model_refinement": {**refinement, "model": _model_data(model, base)}}
    return data


def load_yaml_model(model: type[_T], path: Path) -> _T:
    """Load a YAML file and validate it as ``model``: the loader
    of config kinds that live beside the layer that uses them (the release policy).

    Raises:
        ConfigError: naming the file, a missing file, bad YAML or every invalid field.
    """
    path = Path(path)
    with naming_unset_variables(path):
        return validate_config(model, read_yaml(path), path)


def load_policy_config(path: Path) -> PolicyConfig:
    """Load and validate a policy YAML (``model_refinement.model`` inline or a path)."""
    path = Path(path)
    with naming_unset_variables(path):
        return validate_config(PolicyConfig, _policy_data(read_yaml(path), path.parent), path)


def load_run_config(path: Path) -> RunConfig:
    """Load a run YAML. Its ``dataset``, ``model``, ``heads`` and ``policy`` entries are either
    inline mappings or paths (relative to the run file) of YAML files of that kind.

    Raises:
        ConfigError: naming the file (the run file or a nested one) and what is wrong.
    """
    path = Path(path)
    with naming_unset_variables(path):
        data = read_yaml(path)
        base = path.parent
        _load_entries(data, base, ("dataset", "model", "heads", "policy"))
        store = data.get("store")
        if isinstance(store, str):
            data = resolve_paths(data, base, ("store",))
        return validate_config(RunConfig, data, path)


def load_train_model_config(path: Path) -> TrainModelConfig:
    """Load a ``train-model`` YAML; ``sam2_config``, ``state`` and ``weights`` are relative to it,
    and ``dataset`` is an inline mapping or the path of a dataset YAML."""
    path = Path(path)
    with naming_unset_variables(path):
        data = read_yaml(path)
        data = resolve_paths(data, path.parent, ("state", "weights", "init_weights"))
        _load_dataset_entry(data, path.parent)
        if isinstance(data.get("sam2_config"), str) and not Path(data["sam2_config"]).is_absolute():
            candidate = (path.parent / data["sam2_config"]).resolve()
            if candidate.is_file():
                data["sam2_config"] = str(candidate)
        return validate_config(TrainModelConfig, data, path)


def load_train_heads_config(path: Path) -> TrainHeadsConfig:
    """Load a heads-training YAML. ``dataset`` and each ``models[i].model`` are inline mappings or
    paths (relative to the file) of YAML files of that kind."""
    path = Path(path)
    with naming_unset_variables(path):
        data = read_yaml(path)
        base = path.parent
        _load_dataset_entry(data, base)
        models = data.get("models")
        if isinstance(models, list):
            resolved = []
            for entry in models:
                if isinstance(entry, dict) and isinstance(entry.get("model"), str):
                    model_path = Path(resolve_paths({"model": entry["model"]}, base, ("model",))["model"])
                    entry = {**entry, "model": load_model_config(model_path)}
                elif isinstance(entry, dict) and isinstance(entry.get("model"), dict):
                    entry = {**entry, "model": _model_data(entry["model"], base)}
                resolved.append(entry)
            data["models"] = resolved
        data = resolve_paths(data, base, ("container", "heads_out"))
        return validate_config(TrainHeadsConfig, data, path)


def load_self_train_config(path: Path) -> SelfTrainConfig:
    """Load a ``self-train`` YAML: ``out``, ``release_policy`` and the student's ``sam2_config``
    and ``init_weights`` are relative to it; the teacher's ``model``, ``heads`` and ``policy`` and
    ``review_policy`` are paths of YAML files of that kind or inline mappings.

    Raises:
        ConfigError: naming the file and what is wrong.
    """
    path = Path(path)
    with naming_unset_variables(path):
        data = read_yaml(path)
        base = path.parent
        data = resolve_paths(data, base, ("out", "release_policy"))
        teacher = data.get("teacher")
        if isinstance(teacher, dict):
            teacher = dict(teacher)
            _load_entries(teacher, base, ("model", "heads", "policy"))
            data["teacher"] = teacher
        review = data.get("review_policy")
        if isinstance(review, str):
            data["review_policy"] = load_policy_config(Path(resolve_paths({"r": review}, base, ("r",))["r"]))
        elif isinstance(review, dict):
            data["review_policy"] = _policy_data(review, base)
        student = data.get("student")
        if isinstance(student, dict):
            data["student"] = resolve_paths(student, base, ("sam2_config", "init_weights"))
        return validate_config(SelfTrainConfig, data, path)
