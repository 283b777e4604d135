"""All USAM heads in one fused computation: stacked weights, batched matmuls."""

from __future__ import annotations

import torch

from usam_video.heads import HeadSet

__all__ = ["FusedHeads"]


class FusedHeads:
    """Evaluates ``H`` heads on ``N`` feature rows at once.

    The ``H`` heads' weights are stacked into ``(H, in, out)`` tensors, so one frame costs three
    ``baddbmm`` calls whatever the number of heads, objects and candidates.
    """

    def __init__(self, heads: HeadSet, device: torch.device | str = "cpu"):
        self.names = heads.names
        self.token_dim = heads.token_dim
        self.device = torch.device(device)
        layers = [[head.layers[i] for head in heads.heads.values()] for i in range(3)]
        with torch.no_grad():
            # Linear computes x @ W.T + b: store W.T stacked, (H, in, out).
            self._w = [
                torch.stack([lin.weight.t() for lin in level]).contiguous().to(self.device)
                for level in layers
            ]
            self._b = [
                torch.stack([lin.bias for lin in level])[:, None, :].contiguous().to(self.device)
                for level in layers
            ]

    def __len__(self) -> int:
        return len(self.names)

    @torch.inference_mode()
    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` ``float32`` ``(N, 2D)`` -> ``float32`` ``(H, N)`` raw head outputs in [0, 1]."""
        x = features.to(self.device, torch.float32).unsqueeze(0).expand(len(self.names), -1, -1)
        x = torch.relu(torch.baddbmm(self._b[0], x, self._w[0]))
        x = torch.relu(torch.baddbmm(self._b[1], x, self._w[1]))
        return torch.sigmoid(torch.baddbmm(self._b[2], x, self._w[2])).squeeze(-1)
