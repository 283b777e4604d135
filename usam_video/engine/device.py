"""The torch device a model config asks for (torch only: no sam2, so cheap to import)."""

from __future__ import annotations

import torch

from usam_video.errors import ModelBuildError

__all__ = ["resolve_device"]


def resolve_device(device: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU; asking for CUDA without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelBuildError("model device: expected a CUDA device, found none. Use 'auto' or 'cpu'.")
    return torch.device(device)
