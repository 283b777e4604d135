"""Training USAM heads on recorded tokens: one head per target, MSE, split by video."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from usam_video.errors import InputError
from usam_video.heads.mlp import UsamHead
from usam_video.score_registry import score_info

__all__ = ["HeadFit", "split_by_video", "to_head_target", "from_head_output", "train_head", "train_heads"]


@dataclass(frozen=True, eq=False)
class HeadFit:
    """A trained head and its validation predictions (both on the target's own scale).

    Attributes:
        val_pred: ``float32`` ``(M,)``; val_target: ``float32`` ``(M,)``; val_rows: ``int64`` ``(M,)``.
    """

    name: str
    head: UsamHead
    train_rows: int
    val_rows: np.ndarray
    val_pred: np.ndarray
    val_target: np.ndarray
    final_train_loss: float


def split_by_video(video_ids: Sequence[str], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(N,)`` train and validation row masks; every video lies wholly on one side.

    At least one video goes to each side when there are two or more videos.
    """
    unique = sorted(set(video_ids))
    if len(unique) < 2:
        raise InputError(
            "heads training: expected at least 2 videos to split train/validation by video, "
            f"got {len(unique)}."
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    n_val = min(max(1, round(val_fraction * len(unique))), len(unique) - 1)
    val_videos = {unique[i] for i in order[:n_val]}
    val = np.array([v in val_videos for v in video_ids], dtype=bool)
    return ~val, val


def to_head_target(name: str, values: np.ndarray) -> np.ndarray:
    """A target on the head's sigmoid scale: a score the registry stores shifted (the gaps,
    ``shift`` -0.5) is shifted back (+0.5) and clipped to [0, 1], as the published heads were
    trained. Raises :class:`ConfigError` for a name the registry does not know."""
    shift = score_info(name).shift
    if shift:
        return np.clip(values - shift, 0.0, 1.0)
    return values


def from_head_output(name: str, values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_head_target` for outputs (gap heads read back as gaps)."""
    shift = score_info(name).shift
    return values + shift if shift else values


def train_head(
    name: str,
    features: np.ndarray,
    target: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    *,
    optimizer: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    epochs: int = 60,
    batch_size: int = 64,
    seed: int = 0,
    extra_inputs: int = 0,
) -> HeadFit:
    """Train one head with MSE on the rows where its target is defined.

    Args:
        features: ``float32`` ``(N, 2D + extra_inputs)``: the tokens, then a video head's
            normalised extra inputs; target: ``float32`` ``(N,)`` on the target's scale (NaN rows
            are skipped); train, val: boolean ``(N,)`` row masks from :func:`split_by_video`.
    """
    defined = np.isfinite(target)
    train_rows = np.nonzero(train & defined)[0]
    val_rows = np.nonzero(val & defined)[0]
    if len(train_rows) == 0:
        raise InputError(f"head {name!r}: expected training rows with a defined target, got none.")
    generator = torch.Generator().manual_seed(seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    head = UsamHead((features.shape[1] - extra_inputs) // 2, extra_inputs)
    torch.random.set_rng_state(torch_state)
    x = torch.from_numpy(np.ascontiguousarray(features[train_rows], dtype=np.float32))
    y = torch.from_numpy(to_head_target(name, target[train_rows]).astype(np.float32))
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        raise InputError(f"heads training: expected optimizer 'sgd' or 'adamw', got {optimizer!r}.")
    head.train()
    loss_value = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(head(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        loss_value = total / len(x)
    head.eval()
    with torch.no_grad():
        pred = head(torch.from_numpy(np.ascontiguousarray(features[val_rows], dtype=np.float32))).numpy()
    return HeadFit(
        name=name,
        head=head,
        train_rows=len(train_rows),
        val_rows=val_rows,
        val_pred=from_head_output(name, pred).astype(np.float32),
        val_target=target[val_rows].astype(np.float32),
        final_train_loss=loss_value,
    )


def train_heads(
    features: np.ndarray,
    targets: Mapping[str, np.ndarray],
    video_ids: Sequence[str],
    *,
    val_fraction: float = 0.25,
    seed: int = 0,
    **options: object,
) -> dict[str, HeadFit]:
    """Train one head per target (targets with no defined value are skipped), split by video."""
    train, val = split_by_video(video_ids, val_fraction, seed)
    fits = {}
    for i, (name, target) in enumerate(targets.items()):
        if not np.isfinite(target).any():
            continue
        fits[name] = train_head(name, features, target, train, val, seed=seed + i, **options)  # type: ignore[arg-type]
    return fits
