"""The release head: the probability that a stored label is good, from the scores beside it.

The video heads (``iou_video``, ``lost_video``) regress the IoU; their most confident
frame-objects still include confidently wrong ones (an identity switch onto another track, a
track that jumped), which is exactly where a release draws from. The release head is a small
MLP (``I -> H -> 1``, ReLU, sigmoid) over a frame-object's stored scores and video features,
trained as a classifier of *good* (IoU >= 0.5) on labelled generated videos that no head,
model or test set uses (``usam-video train-release-head``), so it learns how far to trust each
score where they disagree. It reads only what the store already holds: any store labelled with
the heads it was trained on gets the score ``good_release`` without relabelling.

It ships beside those heads (``<heads>/release_head.json``), with the sha256 of the heads it was
trained on: a store labelled with other heads is refused, never scored by a head that does not
know its scores. NumPy only (no torch): a release runs no model.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.errors import InputError
from usam_video.store import FrameTable

__all__ = [
    "RELEASE_HEAD_FILE",
    "RELEASE_SCORE",
    "ReleaseHead",
    "load_release_head",
    "release_head_path",
    "with_release_score",
]

#: The registry score the head gives (a confidence: P(label good)).
RELEASE_SCORE = "good_release"
#: Its file beside the heads directory it was trained on.
RELEASE_HEAD_FILE = "release_head.json"
_FORMAT = "usam-video-release-head"


@dataclass(frozen=True, eq=False)
class ReleaseHead:
    """Weights of the release head.

    Attributes:
        inputs: the ``I`` stored score columns it reads, in order.
        mean, std: ``float64`` ``(I,)``: the training rows' statistics (inputs are standardised;
            a missing value counts as the mean).
        w1: ``float64`` ``(I, H)``; b1: ``(H,)``; w2: ``(H,)``; b2: the output bias.
        heads_sha256: the USAM heads whose scores it was trained on.
        record: how it was trained (seeds, rows, recipe, figures).
    """

    inputs: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float
    heads_sha256: str
    record: dict[str, Any] = field(default_factory=dict)

    def check_inputs(self, names: Collection[str], where: str) -> None:
        """Refuse columns that lack one of the head's inputs.

        A store labelled before the engine computed an input (``colour_to_cond``) has the same
        heads and every other column: scoring it with that input missing (as NaN, i.e. the
        training mean) would give a confident-looking score the head was never validated on.

        Raises:
            InputError: an input is missing, naming it.
        """
        missing = [n for n in self.inputs if n not in names]
        if missing:
            raise InputError(
                f"{where}: expected the release head's inputs among the stored scores, missing {missing}. "
                "The video was labelled before the engine computed them, or by other heads: relabel it "
                "with this version and the heads the release head was trained on, or release by another "
                "score (--policy)."
            )

    def predict(self, columns: Mapping[str, np.ndarray], where: str = "release head") -> np.ndarray:
        """``float64`` P(good) of ``N`` rows from ``{input: float (N,)}`` (a NaN value counts as
        the training mean; a missing input is refused, :meth:`check_inputs`).

        Raises:
            InputError: ``columns`` lacks one of :attr:`inputs`.
        """
        self.check_inputs(columns.keys(), where)
        x = np.stack([np.asarray(columns[name], dtype=np.float64) for name in self.inputs], axis=-1)
        x = (x - self.mean) / self.std
        x = np.where(np.isfinite(x), x, 0.0)
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        logit = hidden @ self.w2 + self.b2
        return 1.0 / (1.0 + np.exp(-logit))

    def score_table(self, table: FrameTable, where: str) -> np.ndarray:
        """``float64`` ``(T, O)``: P(good) of every frame-object of a video.

        Raises:
            InputError: the video lacks a column the head reads (labelled before the engine
                computed it, or by other heads).
        """
        self.check_inputs(table.score_names, where)
        columns = {n: table.scores[:, :, table.score_names.index(n)] for n in self.inputs}
        return self.predict(columns, where)

    def check_heads(self, heads_sha256: str, where: str) -> None:
        """Raise :class:`InputError` unless the video was scored by the heads this head knows."""
        if heads_sha256 != self.heads_sha256:
            raise InputError(
                f"{where}: expected a video labelled with the heads the release head was trained on "
                f"(sha256 {self.heads_sha256[:12]}...), got heads {str(heads_sha256)[:12]}.... Train a "
                "release head for them ('usam-video train-release-head') or release by another score."
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": 1,
            "inputs": list(self.inputs),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "w1": self.w1.tolist(),
            "b1": self.b1.tolist(),
            "w2": self.w2.tolist(),
            "b2": float(self.b2),
            "heads_sha256": self.heads_sha256,
            "record": self.record,
        }

    def save(self, path: Path) -> None:
        """Write the head as JSON (sorted keys: the same weights, the same bytes)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1, sort_keys=True) + "\n")


def load_release_head(path: Path) -> ReleaseHead:
    """Read a release head written by :meth:`ReleaseHead.save`.

    Raises:
        InputError: no file, bad JSON, or weights whose shapes disagree, naming the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(
            f"{path}: expected a release head, found nothing. Train one with 'usam-video train-release-head'."
        ) from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: expected a release head in JSON, got: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise InputError(f"{path}: expected format {_FORMAT!r}, got {str(data)[:60]}.")
    try:
        inputs = tuple(str(n) for n in data["inputs"])
        head = ReleaseHead(
            inputs=inputs,
            mean=np.asarray(data["mean"], dtype=np.float64),
            std=np.asarray(data["std"], dtype=np.float64),
            w1=np.asarray(data["w1"], dtype=np.float64),
            b1=np.asarray(data["b1"], dtype=np.float64),
            w2=np.asarray(data["w2"], dtype=np.float64),
            b2=float(data["b2"]),
            heads_sha256=str(data["heads_sha256"]),
            record=dict(data.get("record", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: expected the release head's fields, got: {exc!r}") from exc
    i, h = len(inputs), head.b1.size
    if head.mean.shape != (i,) or head.std.shape != (i,) or head.w1.shape != (i, h) or head.w2.shape != (h,):
        raise InputError(
            f"{path}: expected weights for {i} inputs and {h} hidden units, got mean {head.mean.shape}, "
            f"std {head.std.shape}, w1 {head.w1.shape}, w2 {head.w2.shape}."
        )
    return head


def release_head_path(provenance: Mapping[str, Any]) -> Path | None:
    """Where the release head of the heads that labelled a video lies (``<heads_source>/
    release_head.json``, whether or not it exists); None for random or no heads."""
    source = str(provenance.get("heads_source", ""))
    return None if source in ("", "none", "random") else Path(source) / RELEASE_HEAD_FILE


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> ReleaseHead:
    del mtime_ns  # part of the key: a rewritten file is read again
    return load_release_head(Path(path))


def with_release_score(
    table: FrameTable, provenance: Mapping[str, Any], where: str
) -> tuple[tuple[str, ...], np.ndarray]:
    """A video's score names and ``float32`` ``(T, O, S)`` scores, plus ``good_release`` when a
    release head lies beside the heads that labelled it (:func:`release_head_path`) and knows
    them (evaluation ranks it like a stored score); unchanged otherwise. The head is read once
    per process, not once per video."""
    names, scores = tuple(table.score_names), table.scores
    path = release_head_path(provenance)
    if path is None or not path.is_file() or RELEASE_SCORE in names:
        return names, scores
    head = _load_cached(str(path), path.stat().st_mtime_ns)
    if head.heads_sha256 != provenance.get("heads_sha256") or not set(head.inputs) <= set(names):
        return names, scores
    extra = head.score_table(table, where).astype(np.float32)
    return (*names, RELEASE_SCORE), np.concatenate([scores, extra[..., None]], axis=-1)
