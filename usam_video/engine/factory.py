"""The one factory of SAM 2 models: resolves a config, builds the real sam2 classes, loads weights.

sam2's own builder composes configs through Hydra's global state (initialised when ``sam2`` is
imported) and only finds configs inside its package. We load the YAML with OmegaConf instead
(the same files, official or ours) and instantiate it with Hydra's ``instantiate``, so package
configs and configs elsewhere take one path and no global Hydra state is touched.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from usam_video.config import ModelConfig
from usam_video.engine.predictor import StreamingVideoPredictor
from usam_video.errors import CheckpointError, ModelBuildError

__all__ = ["BuiltModel", "build_model", "resolve_sam2_config", "file_sha256", "resolve_device"]

# The overrides sam2's `build_sam2_video_predictor(apply_postprocessing=True)` applies, except
# hole filling, which stays off (fill_hole_area=0) by choice:
# - sam2's own VOS evaluation (tools/vos_inference.py) does not apply it, so J&F stays
#   comparable with published numbers;
# - it rewrites only the output logits after track_step: memory is encoded from the unfilled
#   mask and the USAM scores, computed from decoder tokens, do not change;
# - the store keeps the model's raw masks; filling small holes belongs to an export step if
#   ever wanted;
# - CPU and GPU give the same masks (sam2's filler needs its CUDA extension, which
#   SAM2_BUILD_CUDA=0 installs lack: it would warn and skip on every frame).
# A config that sets one of these keys itself keeps its value (the `_target_` excepted): the
# project's trained models turn dynamic_multimask_via_stability off, because they track with
# the single-mask token and their other tokens are trained on clicks only.
_VIDEO_OVERRIDES: dict[str, object] = {
    "model._target_": f"{StreamingVideoPredictor.__module__}.{StreamingVideoPredictor.__qualname__}",
    "model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability": True,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": 0.05,
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": 0.98,
    "model.binarize_mask_from_pts_for_mem_enc": True,
    "model.fill_hole_area": 0,
}


@dataclass(frozen=True, eq=False)
class BuiltModel:
    """A ready predictor and what it was built from (for provenance)."""

    predictor: StreamingVideoPredictor
    config: ModelConfig
    config_path: Path
    checkpoint_sha256: str  # "random" for random weights
    device: torch.device
    dtype: torch.dtype
    token_dim: int
    num_mask_tokens: int
    # Token capture hooks are registered on the shared model: one session may use it at a time
    # (Prefect's thread pool may run two video tasks in one process).
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def untrained(self) -> bool:
        return self.config.random_init


def resolve_sam2_config(name: str) -> Path:
    """Find a sam2 model config: a file path, or a name relative to the sam2 package."""
    candidate = Path(name)
    if candidate.is_file():
        return candidate.resolve()
    spec = find_spec("sam2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelBuildError("expected the 'sam2' package to be installed, found none.")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    for stem in (name, name.removeprefix("sam2/")):
        for suffix in ("", ".yaml"):
            path = package_dir / f"{stem}{suffix}"
            if path.is_file():
                return path
    raise ModelBuildError(
        f"sam2 config {name!r}: expected a YAML file path or a config inside the sam2 package "
        f"(e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml'), found neither."
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_device(device: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU; asking for CUDA without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelBuildError("model device: expected a CUDA device, found none. Use 'auto' or 'cpu'.")
    return torch.device(device)


def _load_checkpoint(model: torch.nn.Module, path: Path) -> str:
    if not path.is_file():
        raise CheckpointError(f"{path}: expected a SAM 2 checkpoint file, found nothing.")
    try:
        # weights_only=True: a checkpoint is data, never code to execute.
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for bad files
        raise CheckpointError(
            f"{path}: expected a torch checkpoint loadable with weights_only=True, got: {exc}"
        ) from exc
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(
            f"{path}: expected a dict with a 'model' state dict (sam2's format), got "
            f"{type(payload).__name__} with keys {sorted(payload)[:5] if isinstance(payload, dict) else '-'}."
        )
    result = model.load_state_dict(payload["model"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: the state dict does not match the model config. "
            f"Missing keys ({len(result.missing_keys)}): {result.missing_keys[:20]}; "
            f"unexpected keys ({len(result.unexpected_keys)}): {result.unexpected_keys[:20]}. "
            "Check that 'sam2_config' is the config this checkpoint was trained with."
        )
    return file_sha256(path)


def build_model(config: ModelConfig) -> BuiltModel:
    """Build the SAM 2 video predictor a model config describes.

    Random weights come only from ``random_init: true`` (seeded by ``config.seed``); otherwise
    the checkpoint must match the architecture exactly (missing or unexpected keys are named).
    """
    config_path = resolve_sam2_config(config.sam2_config)
    try:
        cfg = OmegaConf.load(config_path)
        if not isinstance(cfg, DictConfig) or "model" not in cfg:
            found = list(cfg) if isinstance(cfg, DictConfig) else type(cfg).__name__
            raise ModelBuildError(f"{config_path}: expected a top-level 'model' entry, found {found}.")
        for key, value in _VIDEO_OVERRIDES.items():
            if key == "model._target_" or OmegaConf.select(cfg, key, default=None) is None:
                OmegaConf.update(cfg, key, value, force_add=True)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ModelBuildError(f"{config_path}: expected a sam2 model config, got: {exc}") from exc
    # Seed so that random weights are reproducible (tests and the demo depend on it).
    torch.manual_seed(config.seed)
    try:
        predictor = instantiate(cfg.model, _recursive_=True)
    except Exception as exc:  # hydra wraps constructor errors in its own types
        raise ModelBuildError(f"{config_path}: could not instantiate the model: {exc}") from exc
    checkpoint_sha = "random"
    if config.checkpoint is not None:
        checkpoint_sha = _load_checkpoint(predictor, Path(config.checkpoint))
    device = resolve_device(config.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[config.dtype]
    predictor = predictor.to(device).eval()
    decoder = predictor.sam_mask_decoder
    return BuiltModel(
        predictor=predictor,
        config=config,
        config_path=config_path,
        checkpoint_sha256=checkpoint_sha,
        device=device,
        dtype=dtype,
        token_dim=int(decoder.transformer_dim),
        num_mask_tokens=int(decoder.num_mask_tokens),
    )
