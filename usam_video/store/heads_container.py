"""The Zarr training container: heads-training records kept so training reruns without propagating.

Layout (``N`` rows, append-only, one video at a time)::

    <container>/   attrs: format, token_dim, num_tokens, model_fingerprint, target_names,
                          videos (ids in row order), rows (committed row count)
      iou_tokens     float16 (N, D)       chunks (4096, D)
      mask_tokens    float16 (N, K, D)    chunks (1024, K, D)
      chosen         int8    (N,)
      candidate_iou  float32 (N, K)
      sam_iou        float32 (N,)         SamScore: SAM 2's predicted IoU of the chosen token
      frame_index    int32   (N,)
      object_id      int32   (N,)
      video          int32   (N,)         index into attrs videos
      inputs         float32 (N, F)       the video heads' extra inputs (attrs input_names):
                                          the baseline scores and video features of the row
      targets/<name> float32 (N,)

Tokens are float16 (half the bytes; the heads train in float32). ``rows`` is written after a
video's arrays, so an interrupted append leaves the committed rows intact; the next append
overwrites the uncommitted tail.

``sam_iou`` was added after the first containers were written: a container without it still
opens, reads it as NaN (so SamScore baselines come out NaN, not wrong), and gains the array on
its next append, NaN for the rows recorded before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from usam_video.errors import StoreError, StoreNotFoundError
from usam_video.types import TrainingSamples

__all__ = ["TRAINING_FORMAT", "TrainingContainer"]

TRAINING_FORMAT = "usam-video-training"
_ROW_ARRAYS = (
    "iou_tokens",
    "mask_tokens",
    "chosen",
    "candidate_iou",
    "sam_iou",
    "frame_index",
    "object_id",
    "video",
)


def _create_sam_iou(root: zarr.Group) -> None:
    root.create_array("sam_iou", shape=(0,), chunks=(65536,), dtype="float32", fill_value=np.nan)


class TrainingContainer:
    """Append-only store of :class:`TrainingSamples` for one recording model."""

    def __init__(self, root: zarr.Group, location: str):
        self._root = root
        self.location = location

    @classmethod
    def open_or_create(
        cls,
        path: str | Path,
        token_dim: int,
        num_tokens: int,
        model_fingerprint: str,
        target_names: list[str],
        input_names: list[str] | None = None,
    ) -> TrainingContainer:
        """Open a container made for this model (same fingerprint and token shape) or create it.

        Raises:
            StoreError: the path holds a container of another model, token shape or target set.
        """
        location = str(path)
        root = zarr.open_group(location, mode="a")
        attrs = dict(root.attrs)
        if not attrs:
            root.attrs.update(
                {
                    "format": TRAINING_FORMAT,
                    "token_dim": token_dim,
                    "num_tokens": num_tokens,
                    "model_fingerprint": model_fingerprint,
                    "target_names": list(target_names),
                    "input_names": list(input_names or []),
                    "videos": [],
                    "rows": 0,
                }
            )
            d, k = token_dim, num_tokens
            root.create_array("iou_tokens", shape=(0, d), chunks=(4096, d), dtype="float16")
            root.create_array("mask_tokens", shape=(0, k, d), chunks=(1024, k, d), dtype="float16")
            root.create_array("chosen", shape=(0,), chunks=(65536,), dtype="int8")
            root.create_array(
                "candidate_iou", shape=(0, k), chunks=(65536, k), dtype="float32", fill_value=np.nan
            )
            _create_sam_iou(root)
            for name in ("frame_index", "object_id", "video"):
                root.create_array(name, shape=(0,), chunks=(65536,), dtype="int32")
            f = len(input_names or [])
            root.create_array("inputs", shape=(0, f), chunks=(16384, max(f, 1)), dtype="float32",
                              fill_value=np.nan)
            targets = root.create_group("targets")
            for name in target_names:
                targets.create_array(name, shape=(0,), chunks=(65536,), dtype="float32", fill_value=np.nan)
            return cls(root, location)
        expected = {
            "format": TRAINING_FORMAT,
            "token_dim": token_dim,
            "num_tokens": num_tokens,
            "model_fingerprint": model_fingerprint,
            "target_names": list(target_names),
            "input_names": list(input_names or []),
        }
        found = {key: attrs.get(key) for key in expected}
        if found != expected:
            diff = {k: (found[k], expected[k]) for k in expected if found[k] != expected[k]}
            raise StoreError(
                f"{location}: expected a training container of this model and targets, got a different one "
                f"(found, expected): {diff}. Use another 'container' path or delete this one."
            )
        return cls(root, location)

    @classmethod
    def open(cls, path: str | Path) -> TrainingContainer:
        """Open an existing container for reading."""
        location = str(path)
        if not Path(location).exists():
            raise StoreNotFoundError(f"{location}: expected a training container, found nothing.")
        root = zarr.open_group(location, mode="r")
        if root.attrs.get("format") != TRAINING_FORMAT:
            raise StoreError(
                f"{location}: expected a usam-video training container, got attributes {sorted(root.attrs)}."
            )
        return cls(root, location)

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._root.attrs)

    @property
    def videos(self) -> list[str]:
        """Videos whose rows are committed."""
        return list(self._root.attrs["videos"])

    def rows_of(self, video_id: str) -> int:
        """Committed rows of one video (reads the row-to-video index only, not the tokens)."""
        attrs = dict(self._root.attrs)
        if video_id not in attrs["videos"]:
            return 0
        index = attrs["videos"].index(video_id)
        return int((self._root["video"][: int(attrs["rows"])] == index).sum())

    def append(self, video_id: str, samples: TrainingSamples) -> None:
        """Append one video's rows (all from ``video_id``) and commit them."""
        attrs = dict(self._root.attrs)
        if video_id in attrs["videos"]:
            raise StoreError(f"{self.location}: video {video_id!r} is already in the container.")
        missing = set(attrs["target_names"]) - set(samples.targets)
        if missing:
            raise StoreError(
                f"{self.location}: expected targets {sorted(missing)} for video {video_id!r}, got none."
            )
        start, n = int(attrs["rows"]), len(samples)
        end = start + n
        video_index = len(attrs["videos"])
        columns = {
            "iou_tokens": samples.iou_tokens.astype(np.float16),
            "mask_tokens": samples.mask_tokens.astype(np.float16),
            "chosen": samples.chosen.astype(np.int8),
            "candidate_iou": samples.candidate_iou.astype(np.float32),
            "sam_iou": samples.sam_iou.astype(np.float32),
            "frame_index": samples.frame_index.astype(np.int32),
            "object_id": samples.object_id.astype(np.int32),
            "video": np.full(n, video_index, np.int32),
        }
        if "sam_iou" not in self._root:
            # A container from before sam_iou was kept: the committed rows read as NaN (fill).
            _create_sam_iou(self._root)
        arrays = {name: self._root[name] for name in _ROW_ARRAYS}
        input_names = list(attrs.get("input_names") or [])
        if "inputs" in self._root:
            if samples.inputs is None and not input_names:
                samples = dataclasses.replace(samples, inputs=np.zeros((n, 0), np.float32))
            if samples.inputs is None or samples.inputs.shape[1:] != (len(input_names),):
                got = None if samples.inputs is None else samples.inputs.shape
                raise StoreError(
                    f"{self.location}: expected inputs of shape (N, {len(input_names)}) for video "
                    f"{video_id!r}, got {got}."
                )
            arrays["inputs"] = self._root["inputs"]
            columns["inputs"] = samples.inputs.astype(np.float32)
        arrays.update({f"targets/{t}": self._root[f"targets/{t}"] for t in attrs["target_names"]})
        columns.update({f"targets/{t}": samples.targets[t].astype(np.float32) for t in attrs["target_names"]})
        for name, array in arrays.items():
            array.resize((end, *array.shape[1:]))
            if n:
                array[start:end] = columns[name]
        # Commit last: rows past attrs["rows"] are ignored by readers and overwritten later.
        self._root.attrs.update({"videos": [*attrs["videos"], video_id], "rows": end})

    def read(self) -> TrainingSamples:
        """Every committed row, tokens as float32 (``sam_iou`` NaN where it was not recorded)."""
        attrs = dict(self._root.attrs)
        n = int(attrs["rows"])
        videos = attrs["videos"]
        video_index = self._root["video"][:n]
        return TrainingSamples(
            video_ids=tuple(videos[i] for i in video_index),
            frame_index=self._root["frame_index"][:n],
            object_id=self._root["object_id"][:n],
            iou_tokens=self._root["iou_tokens"][:n].astype(np.float32),
            mask_tokens=self._root["mask_tokens"][:n].astype(np.float32),
            chosen=self._root["chosen"][:n],
            candidate_iou=self._root["candidate_iou"][:n],
            sam_iou=self._root["sam_iou"][:n] if "sam_iou" in self._root else np.full(n, np.nan, np.float32),
            targets={t: self._root[f"targets/{t}"][:n] for t in attrs["target_names"]},
            inputs=self._root["inputs"][:n] if "inputs" in self._root else None,
            input_names=tuple(attrs.get("input_names") or ()),
        )
