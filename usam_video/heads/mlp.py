"""The USAM head: the MLP of UncertainSAM (ICML 2025) on SAM's IoU token and one mask token."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UsamHead"]


class UsamHead(nn.Module):
    """``concat(iou_token, mask_token[, extra inputs])`` ``(N, 2D + E)`` -> ``(N,)`` score in [0, 1].

    Three linear layers ``2D + E -> 2D -> 2D -> 1`` with ReLU between and a sigmoid at the end;
    the parameter names (``layers.0.weight`` ...) are those of the published head files, which
    have ``E = 0``. A video head takes ``E`` normalised extra inputs after the two tokens (see
    :mod:`usam_video.heads.manifest`); its hidden width stays ``2D``.
    """

    def __init__(self, token_dim: int = 256, extra_inputs: int = 0):
        super().__init__()
        width = 2 * token_dim
        self.token_dim = token_dim
        self.extra_inputs = extra_inputs
        self.layers = nn.ModuleList(
            [nn.Linear(width + extra_inputs, width), nn.Linear(width, width), nn.Linear(width, 1)]
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features``: ``float`` ``(N, 2D + E)``; returns ``float`` ``(N,)``."""
        x = features
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return torch.sigmoid(self.layers[-1](x)).squeeze(-1)
