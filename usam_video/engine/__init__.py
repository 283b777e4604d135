"""The only package that imports sam2: model factory, token capture, propagation sessions.

The names below load on first use (PEP 562 ``__getattr__``), so that importing a light module of
this package (:mod:`usam_video.engine.locate`) or a package that merely names the engine does not
import sam2 (which initialises Hydra globally) or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from usam_video.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs only: at run time the names load lazily
    from usam_video.engine.capture import DecoderCall, TokenCapture
    from usam_video.engine.device import resolve_device
    from usam_video.engine.factory import BuiltModel, build_model
    from usam_video.engine.frames import FrameBatch, flush_due
    from usam_video.engine.locate import resolve_sam2_config, token_dim_of
    from usam_video.engine.predictor import Sam2Frames, StreamingVideoPredictor
    from usam_video.engine.sam2_trainer import Sam2TrainerResult, train_with_sam2_trainer
    from usam_video.engine.session import PropagationSession

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "BuiltModel": "usam_video.engine.factory",
    "DecoderCall": "usam_video.engine.capture",
    "FrameBatch": "usam_video.engine.frames",
    "flush_due": "usam_video.engine.frames",
    "PropagationSession": "usam_video.engine.session",
    "Sam2Frames": "usam_video.engine.predictor",
    "Sam2TrainerResult": "usam_video.engine.sam2_trainer",
    "StreamingVideoPredictor": "usam_video.engine.predictor",
    "TokenCapture": "usam_video.engine.capture",
    "build_model": "usam_video.engine.factory",
    "resolve_device": "usam_video.engine.device",
    "resolve_sam2_config": "usam_video.engine.locate",
    "token_dim_of": "usam_video.engine.locate",
    "train_with_sam2_trainer": "usam_video.engine.sam2_trainer",
}

__all__ = [
    "BuiltModel",
    "DecoderCall",
    "FrameBatch",
    "PropagationSession",
    "Sam2Frames",
    "Sam2TrainerResult",
    "StreamingVideoPredictor",
    "TokenCapture",
    "build_model",
    "flush_due",
    "resolve_device",
    "resolve_sam2_config",
    "token_dim_of",
    "train_with_sam2_trainer",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
