"""Heads on disk in the official UncertainSAM format: ``<dir>/<head_name>/model.pth``, plus an
optional ``<dir>/manifest.json`` (:mod:`usam_video.heads.manifest`) saying which token pairing,
token width, SAM 2 release and extra inputs the heads were trained with.

Each file is a plain state dict (``layers.{0,1,2}.{weight,bias}``). The published files were
saved from CUDA tensors, hence ``map_location``; ``weights_only=True`` refuses pickled code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from usam_video.errors import HeadsError
from usam_video.hashing import file_sha256
from usam_video.heads.manifest import (
    DEFAULT_PAIRING,
    DEFAULT_SAM2_VERSION,
    MANIFEST_FILE,
    UNKNOWN_SIZE,
    HeadInputs,
    HeadsManifest,
    Pairing,
    read_manifest,
    write_manifest,
)
from usam_video.heads.mlp import UsamHead
from usam_video.score_registry import score_info

if TYPE_CHECKING:  # only heads_from_config reads a config
    from usam_video.config import HeadsConfig

__all__ = [
    "HEAD_NAMES",
    "GAP_HEADS",
    "GAP_SHIFT",
    "DEFAULT_TOKEN_DIM",
    "HeadSet",
    "heads_from_config",
    "load_heads",
    "manifest_in_force",
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
#: The gap heads were trained on targets shifted by +0.5 (a gap lies in [-0.5, 0.5] then); the
#: shift itself lives in the score registry, this is the published heads that have one.
GAP_HEADS: frozenset[str] = frozenset(n for n in HEAD_NAMES if score_info(n).shift)
GAP_SHIFT = 0.5
#: SAM 2's decoder width (every official size); the project's own small models use less.
DEFAULT_TOKEN_DIM = 256


@dataclass(frozen=True, eq=False)
class HeadSet:
    """Loaded heads by name, with where they came from and what they were trained on.

    Attributes:
        heads: the heads in score-column order (:data:`HEAD_NAMES` first, then by name).
        token_dim: ``D`` of the decoder tokens they read.
        source: a directory, or ``"random"``.
        sha256: a hash over every head file and the manifest in force, or ``"random"``.
        missing: named heads whose file is absent.
        manifest: the directory's manifest (or the default of the official layout). None only
            for a hand-built set: it is then read as the project's own, ``"aligned"``.
    """

    heads: Mapping[str, UsamHead]
    token_dim: int
    source: str
    sha256: str
    missing: tuple[str, ...] = field(default=())
    manifest: HeadsManifest | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.heads)

    @property
    def untrained(self) -> bool:
        return self.source == "random"

    @property
    def info(self) -> HeadsManifest:
        """The manifest in force (a hand-built set without one reads as aligned, SAM 2.1)."""
        return self.manifest if self.manifest is not None else HeadsManifest("aligned", self.token_dim)

    @property
    def pairing(self) -> Pairing:
        """``"reference"`` or ``"aligned"``: which mask token scores which candidate."""
        return self.info.pairing

    @property
    def sam2_version(self) -> str:
        return self.info.sam2_version

    @property
    def sam2_size(self) -> str:
        return self.info.sam2_size

    def inputs_of(self, name: str) -> HeadInputs:
        """Head ``name``'s extra inputs and their normalisation (empty for a token head)."""
        return self.info.inputs_of(name)

    @property
    def token_head_names(self) -> tuple[str, ...]:
        """Heads on ``concat(iou_token, mask_token)`` only, in column order: these are fused."""
        return tuple(n for n in self.heads if not self.inputs_of(n).inputs)

    @property
    def video_head_names(self) -> tuple[str, ...]:
        """Heads with extra inputs after the two tokens (video features), in column order."""
        return tuple(n for n in self.heads if self.inputs_of(n).inputs)


def _ordered(names: Iterable[str]) -> list[str]:
    names = list(names)
    known = [n for n in HEAD_NAMES if n in names]
    return known + sorted(n for n in names if n not in HEAD_NAMES)


def manifest_in_force(
    directory: Path,
    token_dim: int | None,
    pairing: Pairing | None,
    sam2_version: str | None,
) -> HeadsManifest:
    """The manifest that governs ``directory``: its ``manifest.json`` checked against what the
    caller asks for (None: anything), or without one the published set's defaults
    (``reference``, 256-d, SAM 2.1) with the caller's values in their place.

    Raises:
        HeadsError: a malformed manifest, or one that disagrees with a value the caller gives
            (the message names the manifest and the key).
    """
    manifest = read_manifest(directory)
    if manifest is None:
        return HeadsManifest(
            pairing=pairing or DEFAULT_PAIRING,
            token_dim=token_dim or DEFAULT_TOKEN_DIM,
            sam2_version=sam2_version or DEFAULT_SAM2_VERSION,
            sam2_size=UNKNOWN_SIZE,
        )
    path = directory / MANIFEST_FILE
    # A manifest records how the heads were trained: a config that says otherwise points at
    # the wrong directory, and scoring anyway would silently give other numbers.
    for key, asked, recorded in (
        ("token_dim", token_dim, manifest.token_dim),
        ("pairing", pairing, manifest.pairing),
        ("sam2_version", sam2_version, manifest.sam2_version),
    ):
        if asked is not None and asked != recorded:
            wanted, got = (
                (f"{asked}-d tokens", f"heads for {recorded}-d tokens")
                if key == "token_dim"
                else (repr(asked), repr(recorded))
            )
            raise HeadsError(
                f"{path}: expected {key} {wanted} as the heads config asks, got {got}. "
                f"Drop '{key}' from the heads config (the manifest decides) or use other heads."
            )
    return manifest


def _digest_manifest(digest: hashlib._Hash, manifest: HeadsManifest) -> None:
    # The pairing and inputs change every score: two runs with the same files but another
    # pairing must not share a provenance hash.
    digest.update(b"manifest\0" + json.dumps(manifest.to_json(), sort_keys=True).encode())


def load_heads(
    directory: Path,
    names: Iterable[str] | None = None,
    token_dim: int | None = None,
    *,
    pairing: Pairing | None = None,
    sam2_version: str | None = None,
) -> HeadSet:
    """Load heads from ``directory``. With ``names`` None, every ``*/model.pth`` found is loaded.

    Args:
        token_dim, pairing, sam2_version: what the caller expects. Without a ``manifest.json``
            they describe the directory (defaults: 256, ``"reference"``, ``"2.1"``, the published
            set); with one they must agree with it (None: take the manifest's).

    Raises:
        HeadsError: the directory does not exist, holds none of the wanted heads, its manifest
            is malformed or disagrees with the caller, or a file's state dict has the wrong keys
            or shapes (the file and tensor are named). Named heads that are absent are skipped
            and listed in ``HeadSet.missing``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise HeadsError(f"{directory}: expected a heads directory (<dir>/<head>/model.pth), found nothing.")
    manifest = manifest_in_force(directory, token_dim, pairing, sam2_version)
    where = f"{directory / MANIFEST_FILE}" if manifest.from_file else "the official layout (no manifest.json)"
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
        digest.update(name.encode() + b"\0" + bytes.fromhex(file_sha256(path)))
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several unrelated types for bad files
            raise HeadsError(
                f"{path}: expected a state dict loadable with weights_only=True, got: {exc}"
            ) from exc
        extra = len(manifest.inputs_of(name))
        head = UsamHead(manifest.token_dim, extra)
        expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
        if not isinstance(state, dict):
            raise HeadsError(f"{path}: expected a state dict, got {type(state).__name__}.")
        found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        if found != expected:
            wrong = {
                k: found.get(k) for k in sorted(set(expected) | set(found)) if found.get(k) != expected.get(k)
            }
            raise HeadsError(
                f"{path}: expected a USAM head for {manifest.token_dim}-d tokens and {extra} extra "
                f"inputs (as {where} says) with tensors {expected}, got differences {wrong}."
            )
        head.load_state_dict(state)
        heads[name] = head.eval()
    _digest_manifest(digest, manifest)
    return HeadSet(
        heads=heads,
        token_dim=manifest.token_dim,
        source=str(directory),
        sha256=digest.hexdigest(),
        missing=missing,
        manifest=manifest,
    )


def heads_from_config(config: HeadsConfig) -> HeadSet | None:
    """The heads a run config names: a directory (with its overrides), random heads, or None."""
    if config.directory is not None:
        return load_heads(
            config.directory,
            config.names,
            config.token_dim,
            pairing=config.pairing,
            sam2_version=config.sam2_version,
        )
    if config.random_init:
        return random_heads(config.names or (), config.token_dim, config.seed)
    return None


def save_heads(
    directory: Path,
    heads: Mapping[str, UsamHead],
    *,
    pairing: Pairing = "aligned",
    sam2_version: str = DEFAULT_SAM2_VERSION,
    sam2_size: str = UNKNOWN_SIZE,
    inputs: Mapping[str, HeadInputs] | None = None,
) -> Path:
    """Write heads in the official format (``<dir>/<name>/model.pth``, CPU state dicts) and a
    ``manifest.json``; returns the manifest's path.

    The default pairing is ``"aligned"``: heads trained here score candidate ``k`` with token ``k``.

    Raises:
        HeadsError: no heads, heads for different token widths, or a head whose extra input
            count differs from its entry in ``inputs``.
    """
    inputs = dict(inputs or {})
    dims = {head.token_dim for head in heads.values()}
    if len(dims) != 1:
        raise HeadsError(
            f"save heads to {directory}: expected heads for one token width, got widths {sorted(dims)}."
        )
    for name, head in heads.items():
        n = len(inputs.get(name, HeadInputs()))
        if head.extra_inputs != n:
            raise HeadsError(
                f"save heads to {directory}: expected head {name!r} to take {n} extra inputs as "
                f"'inputs' lists, got a head with {head.extra_inputs}."
            )
    strangers = sorted(set(inputs) - set(heads))
    if strangers:
        raise HeadsError(f"save heads to {directory}: expected inputs for saved heads only, got {strangers}.")
    for name, head in heads.items():
        path = Path(directory) / name / "model.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, path)
    manifest = HeadsManifest(pairing, dims.pop(), sam2_version, sam2_size, inputs)
    return write_manifest(directory, manifest)


def random_heads(
    names: Iterable[str],
    token_dim: int | None = None,
    seed: int = 0,
    *,
    pairing: Pairing = "aligned",
    inputs: Mapping[str, HeadInputs] | None = None,
) -> HeadSet:
    """Randomly initialised heads (seeded), for tests and the demo until trained heads exist.

    They read as the project's own (``"aligned"``) unless ``pairing`` says otherwise; ``inputs``
    gives heads extra inputs (video heads).
    """
    d = token_dim or DEFAULT_TOKEN_DIM
    inputs = dict(inputs or {})
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        heads = {
            name: UsamHead(d, len(inputs.get(name, HeadInputs()))).eval() for name in _ordered(names)
        }
    finally:
        torch.random.set_rng_state(generator_state)
    manifest = HeadsManifest(pairing, d, heads=inputs)
    return HeadSet(heads=heads, token_dim=d, source="random", sha256="random", manifest=manifest)
