"""The only package that imports sam2: model factory, token capture, propagation sessions."""

from usam_video.engine.capture import DecoderCall, TokenCapture
from usam_video.engine.factory import (
    BuiltModel,
    build_model,
    file_sha256,
    resolve_device,
    resolve_sam2_config,
)
from usam_video.engine.predictor import Sam2Frames, StreamingVideoPredictor
from usam_video.engine.session import PropagationSession

__all__ = [
    "BuiltModel",
    "DecoderCall",
    "PropagationSession",
    "Sam2Frames",
    "StreamingVideoPredictor",
    "TokenCapture",
    "build_model",
    "file_sha256",
    "resolve_device",
    "resolve_sam2_config",
]
