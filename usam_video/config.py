"""Typed configuration: YAML files under ``configs/`` validated by pydantic models.

Our configs are deliberately not Hydra (importing ``sam2`` initialises Hydra globally, and a
second global config system would fight it). Unknown keys are errors (``extra="forbid"``) so a
typo never silently falls back to a default. Relative paths inside a YAML file are resolved
against that file's folder, so a config means the same thing from any working directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from usam_video.errors import ConfigError
from usam_video.score_registry import direction_of

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
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    """Where a dataset lies, in which format, and which of its videos to label.

    Formats (one reader class each, see :mod:`usam_video.datasets`):

    * ``davis``: ``<root>/JPEGImages/<resolution>/<seq>/%05d.jpg`` and
      ``Annotations/<resolution>/<seq>/%05d.png``; ``split`` names ``ImageSets/2017/<split>.txt``.
    * ``mose``: ``<root>/<split>/JPEGImages/<video>/%05d.jpg`` and
      ``<root>/<split>/Annotations/<video>/%05d.png``; ``split`` (``train``/``valid``) is
      required and picks the folder; ``videos`` may narrow it further.
    * ``sav``: ``layout: mp4`` (SA-V train): ``<root>/<video>.mp4`` with
      ``<video>_manual.json`` / ``<video>_auto.json``, ``annotation_source`` picks which;
      ``layout: frames`` (SA-V val/test): ``<root>/JPEGImages_24fps/<video>/%05d.jpg`` and
      ``<root>/Annotations_6fps/<video>/<obj:03d>/%05d.png``, ``split`` names ``sav_<split>.txt``.
    * ``video``: ``<root>/<video>.mp4`` files and/or ``<root>/<video>/`` JPEG folders (or
      ``root`` is one mp4 file), started from the JSON file ``prompts`` (required).

    Relative ``root`` and ``prompts`` are resolved against the YAML file's folder.
    """

    name: str
    format: Literal["davis", "mose", "sav", "video"] = "davis"
    root: Path
    resolution: str = Field(default="480p", description="davis: the JPEGImages/<resolution> folder")
    late_objects: bool = Field(
        default=False,
        description="davis: prompt an object that enters after the first frame on its first annotated "
        "frame, and evaluate it from there (default: DAVIS semantics, frame 0's objects only; "
        "run and evaluate name the objects left out)",
    )
    frame_gaps: bool = Field(
        default=False,
        description="davis: frame numbers may skip (a davis-format release holds only its fully "
        "released frames); frame index = position, the first frame's mask prompts",
    )
    split: str | None = Field(
        default=None,
        description="davis: ImageSets/2017/<split>.txt list; mose: the <root>/<split>/ folder "
        "(required); sav with layout 'frames': the sav_<split>.txt list",
    )
    videos: list[str] | None = Field(default=None, description="explicit video ids")
    annotation_source: Literal["manual", "auto", "both"] = Field(
        default="manual",
        description="sav: which masklets start objects and serve as ground truth; with 'both' "
        "auto masklet ids are offset by 1000 so they never collide with manual ones",
    )
    layout: Literal["mp4", "frames", "release"] = Field(
        default="mp4",
        description="sav: 'mp4' (train: <video>.mp4 + JSON masklets), 'frames' "
        "(val/test: JPEGImages_24fps + Annotations_6fps PNGs) or 'release' (a usam-video release: "
        "JPEGImages_24fps + annotations/<video>_manual.json, every frame annotated, null = not released)",
    )
    prompts: Path | None = Field(
        default=None,
        description="video: JSON prompt file {'videos': {id: {'objects': [...]}}} (required)",
    )

    #: Fields only one format reads: a non-default value for another format is an error, not a no-op.
    _FORMAT_ONLY_FIELDS: ClassVar[dict[str, str]] = {
        "resolution": "davis",
        "frame_gaps": "davis",
        "late_objects": "davis",
        "annotation_source": "sav",
        "layout": "sav",
        "prompts": "video",
    }

    @model_validator(mode="after")
    def _consistent(self) -> DatasetConfig:
        for field_name, owner in self._FORMAT_ONLY_FIELDS.items():
            # Compared with the default rather than "was it given", so a dumped config (which
            # spells out every default) loads back unchanged.
            default = type(self).model_fields[field_name].default
            if self.format != owner and getattr(self, field_name) != default:
                raise ValueError(
                    f"'{field_name}' applies to format '{owner}' only, got format '{self.format}'"
                )
        if self.format == "mose":
            # The MOSE split is a folder, so a video subset may be chosen inside it.
            if self.split is None:
                raise ValueError("format 'mose' needs 'split' (the <root>/<split>/ folder, e.g. train)")
        elif self.split is not None and self.videos is not None:
            raise ValueError("give either 'split' or 'videos', not both")
        if self.format == "sav" and self.layout == "mp4" and self.split is not None:
            raise ValueError("'split' names sav_<split>.txt of layout 'frames'; layout 'mp4' has no list")
        if self.format == "sav" and self.layout != "mp4" and self.annotation_source != "manual":
            raise ValueError(f"SA-V layout '{self.layout}' holds manual masklets only")
        if self.format == "video" and self.prompts is None:
            raise ValueError("format 'video' needs 'prompts', the JSON file of per-object prompts")
        return self


class ModelConfig(_Strict):
    """A SAM 2 model: its architecture config, its weights, and how it runs.

    ``compile_image_encoder`` and ``tf32`` are speed options (issue #17, benchmark 6); both
    default off. They change the numerics slightly, so a non-default value enters the run
    fingerprint; at their defaults they are left out of it (:func:`config_fingerprint`), so
    stores labelled before the options existed stay current.
    """

    name: str
    sam2_config: str = Field(
        description="a config inside the sam2 package (e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml')"
        " or a path to a YAML file in sam2's config format"
    )
    checkpoint: Path | None = None
    random_init: bool = False
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    compile_image_encoder: bool = Field(
        default=False,
        description="torch.compile the image encoder (sam2's own option, the model config key "
        "'model.compile_image_encoder': mode max-autotune, fullgraph, static shapes). The first "
        "frames are slow while it compiles; the mask decoder stays eager, so token capture works",
        json_schema_extra={"fingerprint": "omit_default"},
    )
    tf32: bool = Field(
        default=False,
        description="on CUDA, allow TensorFloat-32 in matmuls and cuDNN convolutions "
        "(torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32). "
        "Process-wide: building such a model turns it on for every model in the process, and "
        "building one with false does not turn it off again. Ignored on the CPU (logged)",
        json_schema_extra={"fingerprint": "omit_default"},
    )
    prefetch_workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="threads decoding and resizing frames ahead of the model; default half the "
        "cores, 1 to 8 (engine.predictor.default_prefetch_workers). Lower it when several "
        "pipelines share a machine. It never changes a result, so it is not in the fingerprint",
        json_schema_extra={"fingerprint": "omit"},
    )

    @model_validator(mode="after")
    def _weights_are_explicit(self) -> ModelConfig:
        # Random weights must be asked for: a missing checkpoint path must never silently
        # produce an untrained model whose masks look like real pseudo-labels.
        if self.checkpoint is None and not self.random_init:
            raise ValueError("no 'checkpoint' given; set 'random_init: true' to use random weights")
        if self.checkpoint is not None and self.random_init:
            raise ValueError("'checkpoint' and 'random_init: true' exclude each other")
        return self


class HeadsConfig(_Strict):
    """USAM heads: a directory in the official format, random heads, or none.

    A directory with a ``manifest.json`` says itself which token pairing, token width and SAM 2
    release its heads were trained on; ``token_dim``, ``pairing`` and ``sam2_version`` given here
    must then agree with it. A directory without one is the published UncertainSAM set: pairing
    ``reference``, SAM 2.1, 256-d tokens unless these fields say otherwise (``sam2_version:
    "2.0"`` for the SAM 2.0 set). See :mod:`usam_video.heads.manifest`.
    """

    directory: Path | None = None
    names: list[str] | None = Field(default=None, description="heads to load; default all found")
    random_init: bool = False
    seed: int = 0
    token_dim: int | None = Field(
        default=None, gt=0, description="decoder token width; default the manifest's, else 256"
    )
    pairing: Literal["reference", "aligned"] | None = Field(
        default=None,
        description="which mask token scores candidate k; default the manifest's, else 'reference'",
    )
    sam2_version: str | None = Field(
        default=None,
        pattern=r"^\d+\.\d+$",
        description="SAM 2 release the heads were trained on; default the manifest's, else '2.1'",
    )

    @model_validator(mode="after")
    def _weights_are_explicit(self) -> HeadsConfig:
        if self.directory is not None and self.random_init:
            raise ValueError("'directory' and 'random_init: true' exclude each other")
        if self.random_init and not self.names:
            raise ValueError("'random_init: true' needs the list of head 'names' to create")
        return self

    @property
    def enabled(self) -> bool:
        return self.directory is not None or self.random_init


class PolicyRule(_Strict):
    """Route a frame-object when ``score <op> threshold``; rules are tried in order.

    Routes: ``task`` swaps in the candidate mask the USAM IoU heads prefer (no new inference;
    the rule only matches where such a candidate exists), ``model`` queues the frame-object for
    the larger SAM 2 of ``model_refinement``, ``human`` queues it for review, ``refine`` queues
    it for automatic refinement without saying which.
    """

    name: str = Field(description="the reason recorded in the store")
    score: str
    op: Literal["<", "<=", ">", ">="]
    threshold: float
    route: Literal["task", "model", "refine", "human"]


class ReviewPlanConfig(_Strict):
    """How the review planner (``usam_video.review.planner``) spends a human budget.

    ``runs`` (the default) corrects the onset of each run of low frames, runs ranked by the
    error mass downstream of the pick (a correction, re-propagated, fixes the frames after it
    until the track fails again), spread across objects and videos; ``per_frame`` takes the
    most uncertain frame-objects one by one (with ``skip_after`` > 0: never within that many
    frames after an earlier pick of the same object). The defaults were chosen on held-out
    generated videos (usam_video/weights/MODEL_CARD.md), not on the reported ones.
    """

    kind: Literal["runs", "per_frame"] = "runs"
    low_quantile: float = Field(default=0.35, gt=0, le=1, description="share of frames that count as low")
    threshold: float | None = Field(default=None, description="absolute uncertainty threshold instead")
    merge_gap: int = Field(default=2, ge=0, description="low runs this close merge into one")
    mass: Literal["rank", "value"] = "rank"
    object_decay: float = Field(default=0.5, ge=0, le=1)
    video_decay: float = Field(default=1.0, ge=0, le=1)
    skip_after: int = Field(default=8, ge=0)


class HumanBudget(_Strict):
    """At most this much goes to humans: the review planner (``plan``) picks which, by
    ``priority``."""

    fraction_per_video: float | None = Field(default=None, gt=0, le=1)
    max_per_video: int | None = Field(default=None, ge=0)
    max_per_run: int | None = Field(default=None, ge=0)
    priority: str = Field(default="sam_iou", description="score ordering the queue")
    ascending: bool | None = Field(
        default=None,
        description="True: low scores are the most uncertain; default from the score registry "
        "(a confidence such as sam_iou: True, an uncertainty such as a gap: False)",
    )
    plan: ReviewPlanConfig = Field(default_factory=ReviewPlanConfig)

    def low_first(self) -> bool:
        """True when the lowest ``priority`` values are the most uncertain (they go first).

        An explicit ``ascending`` wins (configs written before the score registry); otherwise
        the registry's direction of ``priority`` decides.

        Raises:
            ConfigError: ``priority`` is unknown to the registry, or a video feature (no direction).
        """
        if self.ascending is not None:
            return self.ascending
        direction = direction_of(self.priority)
        if direction == "feature":
            raise ConfigError(
                f"human_budget priority {self.priority!r}: expected a confidence or an uncertainty "
                "score, got a video feature (no direction of its own). Set 'ascending' or pick a score."
            )
        return direction == "confidence"


class ModelRefinement(_Strict):
    """The larger SAM 2 that ``model`` routes are rerun with."""

    model: ModelConfig


class PolicyConfig(_Strict):
    """An ordered list of threshold rules (a frame-object matching none is accepted), the
    candidate score for task swaps, a human budget and the model for model refinement."""

    name: str = "default"
    rules: list[PolicyRule] = Field(default_factory=list)
    candidate_score: str | None = Field(
        default=None, description="per-candidate score picking task swaps (default: the first iou_* head)"
    )
    human_budget: HumanBudget | None = None
    model_refinement: ModelRefinement | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> PolicyConfig:
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"rule names must be unique, got {names}")
        if any(r.route == "model" for r in self.rules) and self.model_refinement is None:
            raise ValueError("a rule routes to 'model' but no 'model_refinement' model is configured")
        return self


class RunConfig(_Strict):
    """One labelling run: which dataset, model, heads and policy, and where to store."""

    name: str
    dataset: DatasetConfig
    model: ModelConfig
    heads: HeadsConfig = HeadsConfig()
    policy: PolicyConfig = PolicyConfig()
    store: str = Field(description="path (or file:// URL) of the Zarr store")
    gpu_concurrency: int = 1

    @property
    def store_path(self) -> str:
        """The store's location: a local path, or an fsspec URL (``memory://``, ``s3://``)."""
        return self.store.removeprefix("file://")


class TrainingRecipe(_Strict):
    """How to train one SAM 2 model on generated clips (see ``usam_video/engine/training.py``).

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


class TrainModelConfig(_Strict):
    """Training one of the project's own SAM 2 models on generated videos (``train-model``)."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="e.g. 'micro'")
    sam2_config: str = Field(description="the architecture, a sam2-format YAML (configs/models/sam2_*.yaml)")
    init_seed: int = Field(default=0, ge=0, description="seed of the random initial weights")
    init_weights: Path | None = Field(
        default=None, description="start from these weights (an earlier stage's export) instead of random"
    )
    recipe: TrainingRecipe = Field(default_factory=TrainingRecipe)
    state: Path = Field(description="resumable training checkpoint (weights, optimizer, step)")
    weights: Path = Field(description="the exported weights, {'model': float16 state dict}")
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads; default torch's")


class TrainModelSpec(_Strict):
    """A model whose masks give targets: ``iou_<label>`` is the true IoU of its masks."""

    label: str = Field(pattern=r"^[a-z0-9_]+$", description="e.g. 'tiny' gives the target iou_tiny")
    model: ModelConfig


class TrainHeadsConfig(_Strict):
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


_T = TypeVar("_T", bound=BaseModel)


# What a run config's load read (files with their content hash, environment variables with their
# values), per thread, so that the next load of the same file in this process can reuse it.
_TRACE = threading.local()


def _trace(kind: str, item: tuple[str, str | None]) -> None:
    recorder = getattr(_TRACE, kind, None)
    if recorder is not None:
        recorder.append(item)


def _read_yaml(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: expected a YAML config file, found nothing.") from exc
    _trace("files", (str(path.resolve()), hashlib.sha256(text.encode()).hexdigest()))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: expected valid YAML, got: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}.")
    return data


# ``$NAME`` or ``${NAME}``; ``${...}`` with anything else inside is refused, not left as text.
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<name>[A-Za-z_][A-Za-z0-9_]*))")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _UnsetVariable(Exception):
    """Raised while expanding; the loader that knows the YAML file turns it into a ConfigError."""

    def __init__(self, key: str, value: str, name: str):
        super().__init__(key, value, name)
        self.key, self.value, self.name = key, value, name


@contextlib.contextmanager
def _naming_unset_variables(path: Path) -> Iterator[None]:
    try:
        yield
    except _UnsetVariable as exc:
        if not _VARIABLE_NAME.fullmatch(exc.name):
            raise ConfigError(
                f"{path}: {exc.key}: expected ${{NAME}} with a variable name in {exc.value!r}, "
                f"got ${{{exc.name}}}. Fix the reference."
            ) from None
        raise ConfigError(
            f"{path}: {exc.key}: expected environment variable {exc.name} to be set (used in "
            f"{exc.value!r}), got it unset or empty. Export {exc.name}, or write the value out."
        ) from None


def _expand_variables(key: str, value: str) -> str:
    """``value`` with every ``$NAME``/``${NAME}`` replaced by its environment value.

    os.path.expandvars leaves an unset variable as literal text, which turned ``store: ${NAME}``
    into a folder named ``${NAME}``: an unset (or empty) variable is an error instead.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") if match.group("braced") is not None else match.group("name")
        if not _VARIABLE_NAME.fullmatch(name) or not os.environ.get(name):
            raise _UnsetVariable(key, value, name)
        _trace("env", (name, os.environ[name]))
        return os.environ[name]

    return _VARIABLE.sub(substitute, value)


def _resolve_paths(data: dict[str, Any], base: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """Resolve relative path values of ``keys`` against ``base`` (expanding ``$VARS`` and ``~``;
    URLs get their variables expanded and are otherwise kept as they are)."""
    out = dict(data)
    for key in keys:
        value = out.get(key)
        if not isinstance(value, str) or not value:
            continue
        value = _expand_variables(key, value)
        if "://" in value:
            out[key] = value
            continue
        expanded = Path(os.path.expanduser(value))
        out[key] = str(expanded if expanded.is_absolute() else (base / expanded).resolve())
    return out


def _validate(model: type[_T], data: dict[str, Any], path: Path) -> _T:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid {model.__name__}: {problems}") from exc


def _dataset_data(data: dict[str, Any], base: Path) -> dict[str, Any]:
    return _resolve_paths(data, base, ("root", "prompts"))


def _model_data(data: dict[str, Any], base: Path) -> dict[str, Any]:
    out = _resolve_paths(data, base, ("checkpoint",))
    cfg = out.get("sam2_config")
    # A sam2 package config name stays a name; anything that looks like a file path is
    # resolved against the YAML's folder.
    if isinstance(cfg, str) and not cfg.startswith("configs/") and cfg.endswith((".yaml", ".yml")):
        out = _resolve_paths(out, base, ("sam2_config",))
    return out


def _heads_data(data: dict[str, Any], base: Path) -> dict[str, Any]:
    return _resolve_paths(data, base, ("directory",))


def load_dataset_config(path: Path) -> DatasetConfig:
    """Load and validate a dataset YAML."""
    path = Path(path)
    with _naming_unset_variables(path):
        return _validate(DatasetConfig, _dataset_data(_read_yaml(path), path.parent), path)


def load_model_config(path: Path) -> ModelConfig:
    """Load and validate a model YAML."""
    path = Path(path)
    with _naming_unset_variables(path):
        return _validate(ModelConfig, _model_data(_read_yaml(path), path.parent), path)


def load_heads_config(path: Path) -> HeadsConfig:
    """Load and validate a heads YAML."""
    path = Path(path)
    with _naming_unset_variables(path):
        return _validate(HeadsConfig, _heads_data(_read_yaml(path), path.parent), path)


def _policy_data(data: dict[str, Any], base: Path) -> dict[str, Any]:
    refinement = data.get("model_refinement")
    if isinstance(refinement, dict):
        model = refinement.get("model")
        if isinstance(model, str):
            model_path = Path(_resolve_paths({"model": model}, base, ("model",))["model"])
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
    with _naming_unset_variables(path):
        return _validate(model, _read_yaml(path), path)


def load_policy_config(path: Path) -> PolicyConfig:
    """Load and validate a policy YAML (``model_refinement.model`` inline or a path)."""
    path = Path(path)
    with _naming_unset_variables(path):
        return _validate(PolicyConfig, _policy_data(_read_yaml(path), path.parent), path)


_RUN_CACHE: dict[tuple[str, str], tuple[tuple[tuple[str, str | None], ...], RunConfig]] = {}
_RUN_CACHE_LOCK = threading.Lock()


def _unchanged(inputs: tuple[tuple[str, str | None], ...]) -> bool:
    for kind_name, value in inputs:
        kind, _, name = kind_name.partition(":")
        if kind == "env":
            if os.environ.get(name) != value:
                return False
        else:
            try:
                current = hashlib.sha256(Path(name).read_text().encode()).hexdigest()
            except OSError:
                return False
            if current != value:
                return False
    return True


def load_run_config(path: Path) -> RunConfig:
    """Load a run YAML. Its ``dataset``, ``model``, ``heads`` and ``policy`` entries are either
    inline mappings or paths (relative to the run file) of YAML files of that kind.

    A run is loaded by the CLI, its flow and every task, often in one process: the parsed and
    validated config is kept per process and returned again (a copy) while every file it was
    read from has the same content and every environment variable it used (and ``HOME``, for
    ``~``) the same value; anything changed, it is loaded afresh. Errors are never kept.
    """
    key = (str(path), os.getcwd())
    with _RUN_CACHE_LOCK:
        cached = _RUN_CACHE.get(key)
    if cached is not None and _unchanged(cached[0]):
        return cached[1].model_copy(deep=True)
    _TRACE.files, _TRACE.env = [], []
    try:
        config = _load_run_config(Path(path))
        inputs = tuple((f"file:{p}", d) for p, d in _TRACE.files) + tuple(
            (f"env:{n}", v) for n, v in [*_TRACE.env, ("HOME", os.environ.get("HOME"))]
        )
    finally:
        _TRACE.files = _TRACE.env = None
    with _RUN_CACHE_LOCK:
        _RUN_CACHE[key] = (inputs, config)
    return config.model_copy(deep=True)


def _load_run_config(path: Path) -> RunConfig:
    with _naming_unset_variables(path):
        data = _read_yaml(path)
        base = path.parent
        loaders = {
            "dataset": (load_dataset_config, _dataset_data),
            "model": (load_model_config, _model_data),
            "heads": (load_heads_config, _heads_data),
            "policy": (load_policy_config, _policy_data),
        }
        for key, (load_file, resolve_inline) in loaders.items():
            value = data.get(key)
            if isinstance(value, str):
                data[key] = load_file(Path(_resolve_paths({key: value}, base, (key,))[key]))
            elif isinstance(value, dict):
                data[key] = resolve_inline(value, base)
        store = data.get("store")
        if isinstance(store, str):
            data = _resolve_paths(data, base, ("store",))
        return _validate(RunConfig, data, path)


def load_train_model_config(path: Path) -> TrainModelConfig:
    """Load a ``train-model`` YAML; ``sam2_config``, ``state`` and ``weights`` are relative to it."""
    path = Path(path)
    with _naming_unset_variables(path):
        data = _read_yaml(path)
        data = _resolve_paths(data, path.parent, ("state", "weights", "init_weights"))
        if isinstance(data.get("sam2_config"), str) and not Path(data["sam2_config"]).is_absolute():
            candidate = (path.parent / data["sam2_config"]).resolve()
            if candidate.is_file():
                data["sam2_config"] = str(candidate)
        return _validate(TrainModelConfig, data, path)


def load_train_heads_config(path: Path) -> TrainHeadsConfig:
    """Load a heads-training YAML. ``dataset`` and each ``models[i].model`` are inline mappings or
    paths (relative to the file) of YAML files of that kind."""
    path = Path(path)
    with _naming_unset_variables(path):
        data = _read_yaml(path)
        base = path.parent
        dataset = data.get("dataset")
        if isinstance(dataset, str):
            dataset_path = _resolve_paths({"dataset": dataset}, base, ("dataset",))["dataset"]
            data["dataset"] = load_dataset_config(Path(dataset_path))
        elif isinstance(dataset, dict):
            data["dataset"] = _dataset_data(dataset, base)
        models = data.get("models")
        if isinstance(models, list):
            resolved = []
            for entry in models:
                if isinstance(entry, dict) and isinstance(entry.get("model"), str):
                    model_path = Path(_resolve_paths({"model": entry["model"]}, base, ("model",))["model"])
                    entry = {**entry, "model": load_model_config(model_path)}
                elif isinstance(entry, dict) and isinstance(entry.get("model"), dict):
                    entry = {**entry, "model": _model_data(entry["model"], base)}
                resolved.append(entry)
            data["models"] = resolved
        data = _resolve_paths(data, base, ("container", "heads_out"))
        return _validate(TrainHeadsConfig, data, path)


def _omit_neutral_defaults(config: Any, dumped: Any) -> Any:
    """``dumped`` (``config``'s JSON dump) less every field marked ``{"fingerprint":
    "omit_default"}`` that holds its default, and every field marked ``{"fingerprint": "omit"}``
    (settings that never change a result), at any depth."""
    if isinstance(config, BaseModel) and isinstance(dumped, dict):
        for name, info in type(config).model_fields.items():
            if name not in dumped:
                continue
            value = getattr(config, name)
            extra = info.json_schema_extra
            marker = extra.get("fingerprint") if isinstance(extra, dict) else None
            if marker == "omit" or (marker == "omit_default" and value == info.default):
                del dumped[name]
            else:
                dumped[name] = _omit_neutral_defaults(value, dumped[name])
    elif isinstance(config, (list, tuple)) and isinstance(dumped, list):
        return [_omit_neutral_defaults(c, d) for c, d in zip(config, dumped, strict=True)]
    elif isinstance(config, dict) and isinstance(dumped, dict):
        return {key: _omit_neutral_defaults(config.get(key), value) for key, value in dumped.items()}
    return dumped


def config_fingerprint(config: BaseModel) -> str:
    """A short stable hash of a config's content (used to tell whether stored output is current).

    Every field counts, defaults included, except fields added later with the marker
    ``json_schema_extra={"fingerprint": "omit_default"}`` while they hold their default (adding
    such an option leaves the fingerprints of existing stores unchanged) and fields marked
    ``{"fingerprint": "omit"}``, which never change a result (e.g. how many threads decode).
    """
    payload = json.dumps(_omit_neutral_defaults(config, config.model_dump(mode="json")), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
