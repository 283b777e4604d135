"""Heads on disk in the official UncertainSAM format: ``<dir>/<head_name>/model.pth``.

Each file is a plain state dict (``layers.{0,1,2}.{weight,bias}``). The published files were
saved from CUDA tensors, hence ``map_location``; ``weights_only=True`` refuses pickled code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from usam_video.errors import HeadsError
from usam_video.heads.mlp import UsamHead

__all__ = [
    "HEAD_NAMES",
    "GAP_HEADS",
    "GAP_SHIFT",
    "HeadSet",
    "load_heads",
    "save_heads",
    "random_heads",
]

#: Heads of the published set, in a fixed order (score columns follow it).
HEAD_NAMES: tuple[str, ...] = (
    "iou_tiny",
    "iou_small",
    "iou_base_plus",
    "iou_large",
    "iou_dense_prompt",
    "iou_unsupervised",
    "model_gap",
    "prompt_gap",
    "task_gap",
)
#: The gap heads were trained on targets shifted by +0.5 (a gap lies in [-0.5, 0.5] then).
GAP_HEADS: frozenset[str] = frozenset({"model_gap", "prompt_gap", "task_gap"})
GAP_SHIFT = 0.5


@dataclass(frozen=True, eq=False)
class HeadSet:
    """Loaded heads by name, with where they came from."""

    heads: Mapping[str, UsamHead]
    token_dim: int
    source: str  # a directory, or "random"
    sha256: str  # hash over every head file, or "random"
    missing: tuple[str, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.heads)

    @property
    def untrained(self) -> bool:
        return self.source == "random"


def _ordered(names: Iterable[str]) -> list[str]:
    names = list(names)
    known = [n for n in HEAD_NAMES if n in names]
    return known + sorted(n for n in names if n not in HEAD_NAMES)


def load_heads(directory: Path, names: Iterable[str] | None = None, token_dim: int = 256) -> HeadSet:
    """Load heads from ``directory``. With ``names`` None, every ``*/model.pth`` found is loaded.

    Raises:
        HeadsError: the directory does not exist, holds none of the wanted heads, or a file's
            state dict has the wrong keys or shapes (the file and tensor are named). Named heads
            that are absent are skipped and listed in ``HeadSet.missing``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise HeadsError(f"{directory}: expected a heads directory (<dir>/<head>/model.pth), found nothing.")
    if names is None:
        wanted = _ordered(p.parent.name for p in directory.glob("*/model.pth"))
        if not wanted:
            raise HeadsError(f"{directory}: expected <head_name>/model.pth files, found none.")
    else:
        wanted = _ordered(names)
    digest = hashlib.sha256()
    heads: dict[str, UsamHead] = {}
    # A partial set is usable (each head scores on its own); which are missing is reported.
    missing = tuple(name for name in wanted if not (directory / name / "model.pth").is_file())
    present = [name for name in wanted if name not in missing]
    if not present:
        raise HeadsError(
            f"{directory}: expected heads {list(missing)} as <head>/model.pth, found none of them "
            f"(present: {sorted(p.parent.name for p in directory.glob('*/model.pth'))})."
        )
    for name in present:
        path = directory / name / "model.pth"
        raw = path.read_bytes()
        digest.update(name.encode() + b"\0" + hashlib.sha256(raw).digest())
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several unrelated types for bad files
            raise HeadsError(
                f"{path}: expected a state dict loadable with weights_only=True, got: {exc}"
            ) from exc
        head = UsamHead(token_dim)
        expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
        if not isinstance(state, dict):
            raise HeadsError(f"{path}: expected a state dict, got {type(state).__name__}.")
        found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        if found != expected:
            wrong = {
                k: found.get(k) for k in sorted(set(expected) | set(found)) if found.get(k) != expected.get(k)
            }
            raise HeadsError(
                f"{path}: expected a USAM head for {token_dim}-d tokens with tensors {expected}, "
                f"got differences {wrong}."
            )
        head.load_state_dict(state)
        heads[name] = head.eval()
    return HeadSet(
        heads=heads, token_dim=token_dim, source=str(directory), sha256=digest.hexdigest(), missing=missing
    )


def save_heads(directory: Path, heads: Mapping[str, UsamHead]) -> None:
    """Write heads in the official format (``<dir>/<name>/model.pth``, CPU state dicts)."""
    for name, head in heads.items():
        path = Path(directory) / name / "model.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, path)


def random_heads(names: Iterable[str], token_dim: int = 256, seed: int = 0) -> HeadSet:
    """Randomly initialised heads (seeded), for tests and the demo until trained heads exist."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        heads = {name: UsamHead(token_dim).eval() for name in _ordered(names)}
    finally:
        torch.random.set_rng_state(generator_state)
    return HeadSet(heads=heads, token_dim=token_dim, source="random", sha256="random")
