"""All USAM heads in one fused computation: stacked weights, batched matmuls."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from usam_video.errors import HeadsError
from usam_video.heads import HeadSet

__all__ = ["FusedHeads"]


class FusedHeads:
    """Evaluates ``H`` heads on ``N`` feature rows at once.

    The ``H`` heads' weights are stacked into ``(H, in, out)`` tensors, so one frame costs three
    ``baddbmm`` calls whatever the number of heads, objects and candidates.
    """

    def __init__(
        self, heads: HeadSet, device: torch.device | str = "cpu", names: Sequence[str] | None = None
    ):
        """Stack ``names`` (default: every token head of ``heads``) in that order.

        Raises:
            HeadsError: a name is not in ``heads``, or names a head with extra inputs (a video
                head's first layer is wider: it cannot share the stacked weights).
        """
        self.names = tuple(heads.token_head_names if names is None else names)
        absent = [n for n in self.names if n not in heads.heads]
        wide = [n for n in self.names if n not in absent and heads.heads[n].extra_inputs]
        if absent or wide:
            raise HeadsError(
                f"fused heads from {heads.source}: expected token heads of this set "
                f"{list(heads.token_head_names)}, got absent {absent} and heads with extra inputs {wide}."
            )
        self.token_dim = heads.token_dim
        self.device = torch.device(device)
        layers = [[heads.heads[n].layers[i] for n in self.names] for i in range(3)]
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
