"""Builders shared by the evaluation tests: prediction folders and stores written from ground
truth, so every expected number is known without running SAM 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import yaml

from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.evaluation import db_eval_iou
from usam_video.palette import write_palette_png
from usam_video.store import PseudoLabelStore

__all__ = [
    "FAKE_SCORES",
    "write_dataset_yaml",
    "copy_davis_predictions",
    "write_sav_predictions",
    "write_fake_store",
]

#: Score columns of :func:`write_fake_store`: sam_iou is the true IoU (a perfect confidence),
#: task_gap is 1 - IoU (a perfect uncertainty), object_score is constant (all ties),
#: iou_tiny is noise and "mystery" has no known direction.
FAKE_SCORES = ("sam_iou", "object_score", "iou_tiny", "task_gap", "mystery")


def write_dataset_yaml(path: Path, name: str, root: Path, videos: list[str]) -> Path:
    """A DAVIS-format dataset YAML (the CLI and the flow take a path)."""
    path.write_text(yaml.safe_dump({"name": name, "format": "davis", "root": str(root), "videos": videos}))
    return path


def copy_davis_predictions(annotations: Path, out: Path, videos: list[str], shift: int = 0) -> Path:
    """Write ``<out>/<video>/%05d.png`` from ground-truth PNGs; with ``shift`` = 1, frame t
    gets the ground truth of frame t-1 (frame 0 keeps its own)."""
    for video in videos:
        files = sorted((annotations / video).glob("*.png"))
        (out / video).mkdir(parents=True, exist_ok=True)
        for t in range(len(files)):
            shutil.copyfile(files[max(t - shift, 0)], out / video / f"{t:05d}.png")
    return out


def write_sav_predictions(dataset: DatasetConfig, out: Path, videos: list[str]) -> Path:
    """Write the ground truth in SA-V layout ``<out>/<video>/<obj:03d>/%05d.png``."""
    reader = open_dataset(dataset)
    for video in videos:
        frames = reader.annotated_frames(video)
        annotations = [reader.ground_truth(video, t) for t in frames]
        ids = sorted({i for a in annotations if a is not None for i in a.object_ids})
        for obj in ids:
            folder = out / video / f"{obj:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for t, ann in zip(frames, annotations, strict=True):
                assert ann is not None
                write_palette_png(folder / f"{t:05d}.png", ann.mask_of(obj).astype(np.uint8))
    return out


def write_fake_store(
    dataset: DatasetConfig, store_path: Path, videos: list[str], *, seed: int = 0, complete: bool = True
) -> PseudoLabelStore:
    """A store whose masks are the ground truth shifted right by 0..6 pixels at random (the
    prompt frame 0 unshifted) and whose scores are built from the true IoU (:data:`FAKE_SCORES`).

    Frames without ground truth get the prompt mask.
    """
    rng = np.random.default_rng(seed)
    reader = open_dataset(dataset)
    store = PseudoLabelStore.open(store_path)
    for video in videos:
        ref = reader.video(video)
        prompts = {p.object_id: p.mask for p in reader.prompts(video)}
        ids = sorted(prompts)
        writer = store.begin_video(ref, ids, FAKE_SCORES, ["low"], {"fake": True}, "fake")
        for t in range(ref.num_frames if complete else ref.num_frames - 1):
            ann = reader.ground_truth(video, t)
            masks = np.zeros((len(ids), ref.height, ref.width), dtype=bool)
            scores = np.zeros((len(ids), len(FAKE_SCORES)), dtype=np.float32)
            for o, obj in enumerate(ids):
                gt = ann.mask_of(obj) if ann is not None else prompts[obj]
                dx = 0 if t == 0 else int(rng.integers(0, 7))
                masks[o, :, dx:] = gt[:, : ref.width - dx]
                iou = float(db_eval_iou(gt, masks[o], None if ann is None else ann.void))
                scores[o] = (iou, 0.5, rng.random(), 1.0 - iou, rng.random())
            status = np.ones(len(ids), dtype=np.uint8)
            writer.write_frame(t, masks, scores, status, np.zeros(len(ids), dtype=np.uint8))
        if complete:
            writer.finish()
        else:
            writer.abort()  # what was handed over lands; the video stays incomplete
    return store
