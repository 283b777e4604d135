"""Every copy between the host and the engine's device that the per-frame path makes.

On a GPU a plain copy to the host waits for every kernel queued before it: the host cannot
launch the next frame's work meanwhile. The per-frame path therefore copies to the host only
through :func:`copy_to_host` (``non_blocking`` into pinned memory, waited on once, when the
host needs the values) and uploads host facts only through :func:`to_device` (pinned,
``non_blocking``: no wait at all). Keeping them in one place also lets a test count them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["HostCopy", "copy_to_host", "to_device"]


@dataclass(eq=False)
class HostCopy:
    """A device-to-host copy in flight; :meth:`wait` returns the host array."""

    tensor: torch.Tensor
    event: torch.cuda.Event | None = None

    def wait(self) -> np.ndarray:
        """Block until the copy has landed (one synchronisation on a GPU, none on the CPU)."""
        if self.event is not None:
            self.event.synchronize()
        return self.tensor.numpy()


def copy_to_host(tensor: torch.Tensor) -> HostCopy:
    """Start copying ``tensor`` to the host without waiting for it.

    On CUDA: ``non_blocking`` into pinned memory and an event recorded behind it; on the CPU the
    tensor itself (made contiguous; no copy unless it was a view).
    """
    tensor = tensor.detach()
    if tensor.device.type != "cuda":
        return HostCopy(tensor.contiguous())
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return HostCopy(host, event)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Upload a small host array: pinned and ``non_blocking`` on CUDA (a plain ``.to`` would wait
    for the device to drain first), shared memory on the CPU."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
