"""The one factory of SAM 2 models: resolves a config, builds the real sam2 classes, loads weights.

sam2's own builder composes configs through Hydra's global state (initialised when ``sam2`` is
imported) and only finds configs inside its package. We load the YAML with OmegaConf instead
(the same files, official or ours) and instantiate it with Hydra's ``instantiate``, so package
configs and configs elsewhere take one path and no global Hydra state is touched.

Speed options of :class:`~usam_video.config.ModelConfig`:

* ``compile_image_encoder`` sets sam2's own config key ``model.compile_image_encoder``:
  ``SAM2Base.__init__`` then wraps ``image_encoder.forward`` in ``torch.compile`` (max-autotune,
  fullgraph, static shapes). The mask decoder stays eager, so the token-capture forward hooks
  (:mod:`usam_video.engine.capture`) fire as before.
* ``tf32`` turns on TensorFloat-32 for CUDA matmuls and cuDNN convolutions. These are
  process-wide torch flags: once a tf32 model is built, every model in the process uses them.
  On the CPU they mean nothing and are left alone.

sam2 1.1.0's ``build_sam2_video_predictor(..., vos_optimized=True)`` selects
``SAM2VideoPredictorVOS``, which also compiles the memory encoder, memory attention, prompt
encoder and mask decoder. We do not offer it: the predictor class is our
``StreamingVideoPredictor`` (a ``SAM2VideoPredictor``, chosen by ``++model._target_``), and a
compiled mask decoder (fullgraph) runs its ``transformer`` and ``iou_prediction_head`` inside
the graph, where the per-session capture hooks registered after compilation do not fire
(torch._dynamo does not guard on hooks by default): token capture would fail.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from usam_video.config import ModelConfig
from usam_video.engine.device import resolve_device
from usam_video.engine.locate import resolve_sam2_config
from usam_video.engine.predictor import StreamingVideoPredictor
from usam_video.errors import CheckpointError, ModelBuildError
from usam_video.hashing import file_sha256

__all__ = ["BuiltModel", "build_model", "image_encoder_compiled"]

log = logging.getLogger(__name__)

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
    # What the speed options did: the image encoder's forward is torch.compiled; TF32 was
    # turned on (CUDA only).
    compiled_image_encoder: bool = False
    tf32: bool = False
    # Token capture hooks are registered on the shared model: one session may use it at a time
    # (Prefect's thread pool may run two video tasks in one process).
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def untrained(self) -> bool:
        return self.config.random_init


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


def _instantiate(cfg: DictConfig, config_path: Path) -> torch.nn.Module:
    """The sam2 module a resolved config describes, on the CPU, weights as its constructors set them."""
    try:
        return instantiate(cfg.model, _recursive_=True)
    except Exception as exc:  # hydra wraps constructor errors in its own types
        raise ModelBuildError(f"{config_path}: could not instantiate the model: {exc}") from exc


def image_encoder_compiled(predictor: torch.nn.Module) -> bool:
    """True when ``predictor.image_encoder.forward`` is a ``torch.compile`` wrapper.

    sam2 compiles the bound method (not the module, "to allow loading checkpoints") and stores
    it as an instance attribute; torch marks such wrappers with ``_torchdynamo_orig_callable``.
    """
    forward = vars(predictor.image_encoder).get("forward")
    return forward is not None and hasattr(forward, "_torchdynamo_orig_callable")


def _apply_tf32(config: ModelConfig, device: torch.device) -> bool:
    """Turn on TF32 (process-wide) for a CUDA model that asks for it; True if it did."""
    if not config.tf32:
        return False
    if device.type != "cuda":
        log.warning(
            "model %r: 'tf32: true' ignored on %s (TensorFloat-32 is a CUDA matmul/cuDNN mode); "
            "the torch.backends flags were left unchanged.",
            config.name,
            device,
        )
        return False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return True


def build_model(config: ModelConfig) -> BuiltModel:
    """Build the SAM 2 video predictor a model config describes.

    Random weights come only from ``random_init: true`` (seeded by ``config.seed``); otherwise
    the checkpoint must match the architecture exactly (missing or unexpected keys are named).
    ``compile_image_encoder`` is passed to sam2 as ``model.compile_image_encoder`` (always:
    the model config, not the sam2 YAML, decides); ``tf32`` turns on TF32 process-wide on CUDA.
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
        OmegaConf.update(cfg, "model.compile_image_encoder", config.compile_image_encoder, force_add=True)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ModelBuildError(f"{config_path}: expected a sam2 model config, got: {exc}") from exc
    if config.random_init:
        # Random weights are reproducible from config.seed (tests and the demo depend on it). The
        # seed is set in a fork of the CPU generator (the model is built on the CPU): building a
        # model leaves the caller's random state as it was. A checkpoint overwrites every
        # parameter and buffer, so its build needs no seed at all.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            predictor = _instantiate(cfg, config_path)
        checkpoint_sha = "random"
    else:
        assert config.checkpoint is not None  # ModelConfig: a checkpoint, or random_init
        predictor = _instantiate(cfg, config_path)
        checkpoint_sha = _load_checkpoint(predictor, Path(config.checkpoint))
    device = resolve_device(config.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[config.dtype]
    predictor = predictor.to(device).eval()
    tf32 = _apply_tf32(config, device)
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
        compiled_image_encoder=image_encoder_compiled(predictor),
        tf32=tf32,
    )
