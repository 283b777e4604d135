"""Train the project's own SAM 2 models on generated videos, export them, and measure them.

``train_model`` resumes from the config's ``state`` checkpoint (so a long CPU training can span
several sessions), trains with :func:`usam_video.engine.train_sam2.train_sam2`, and exports the
weights as ``{"model": float16 state dict, "training": JSON}``, the format sam2's loader and
:func:`usam_video.engine.build_model` read. ``model_jf`` and ``copy_first_mask_jf`` give the
validation figure of a model and of the trivial baseline every model must beat.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from usam_video.config import DatasetConfig, HeadsConfig, ModelConfig, RunConfig, TrainModelConfig
from usam_video.datasets import open_dataset
from usam_video.datasets.clips import DatasetClips
from usam_video.datasets.rendering import training_clip
from usam_video.engine import build_model
from usam_video.engine.train_sam2 import TrainingClip, TrainingState, save_checkpoint, train_sam2
from usam_video.errors import InputError
from usam_video.evaluation.baseline import CopyFirstMask
from usam_video.hashing import file_sha256
from usam_video.palette import write_palette_png
from usam_video.pipeline.evaluate import evaluate_copy_first_mask, evaluate_predictions
from usam_video.pipeline.label import label_dataset
from usam_video.release import MANIFEST

__all__ = [
    "TrainModelResult",
    "copy_first_mask_jf",
    "model_jf",
    "train_model",
    "training_data",
    "write_copy_first_mask",
]


@dataclass(frozen=True)
class TrainModelResult:
    """What a ``train-model`` call did."""

    name: str
    weights: str
    steps_done: int
    steps_planned: int
    seconds: float
    finished: bool
    last_loss: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def train_model(
    config: TrainModelConfig,
    max_minutes: float | None = None,
    log: Callable[[str], None] = print,
) -> TrainModelResult:
    """Train (or resume) the model of ``config``; export its weights when the recipe is done.

    ``max_minutes`` stops early: the state checkpoint keeps the progress and a later call
    resumes it (clip ``k`` is the same whatever the stops, so the result does not depend on
    them). The exported weights are written only once every step is done.
    """
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    init_metadata = None
    if config.init_weights is not None and not Path(config.init_weights).is_file():
        raise InputError(
            f"{config.init_weights}: expected the weights of the previous training stage, found no "
            "file. Train that stage first (see the Makefile's `models` target)."
        )
    # A later stage starts from an earlier stage's export, loaded by the factory like any
    # checkpoint (strict keys, weights_only); the first stage from seeded random weights.
    built = build_model(
        ModelConfig(
            name=config.name,
            sam2_config=config.sam2_config,
            checkpoint=config.init_weights,
            random_init=config.init_weights is None,
            seed=config.init_seed,
            device="auto",
        )
    )
    model = built.predictor
    if config.init_weights is not None:
        payload = torch.load(config.init_weights, map_location="cpu", weights_only=True)
        init_metadata = json.loads(payload.get("training", "null"))
    clips, data = training_data(config)
    state: TrainingState = train_sam2(
        model,
        config.recipe,
        Path(config.state),
        clips,
        resume=True,
        max_seconds=None if max_minutes is None else max_minutes * 60.0,
        log=log,
    )
    finished = state.step >= config.recipe.steps
    if finished:
        metadata = {
            "name": config.name,
            "sam2_config": Path(config.sam2_config).name,
            "recipe": config.recipe.model_dump(),
            "steps": state.step,
            "train_seconds": round(state.seconds, 1),
            "device": str(built.device),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu(s), torch {torch.__version__}",
            "threads": torch.get_num_threads(),
            "history": state.history,
            "init": init_metadata,
            "data": data,
        }
        # float16 halves the committed size; sam2's loader copies it into float32 parameters.
        save_checkpoint(Path(config.weights), model, {"training": json.dumps(metadata)}, half=True)
        log(f"exported {config.weights}")
    return TrainModelResult(
        name=config.name,
        weights=str(config.weights),
        steps_done=state.step,
        steps_planned=config.recipe.steps,
        seconds=state.seconds,
        finished=finished,
        last_loss=state.history[-1]["loss"] if state.history else None,
    )


def training_data(config: TrainModelConfig) -> tuple[Callable[[int], TrainingClip], dict[str, Any]]:
    """The clip of each training step and the record of the data: generated clips, or clips cut
    from ``config.dataset`` (:class:`~usam_video.datasets.clips.DatasetClips`), with the
    dataset's config, its videos and annotated frames and, for a release, what its manifest
    says it holds (store, release number, policy and threshold, risk, counts) and the
    manifest's sha256."""
    if config.dataset is None:
        return functools.partial(training_clip, config.recipe), {"source": "generated clips"}
    reader = open_dataset(config.dataset)
    clips = DatasetClips(reader, reader.list_videos(), config.recipe)
    data: dict[str, Any] = {
        "source": "dataset",
        "dataset": config.dataset.model_dump(mode="json"),
        "videos": len(clips.videos),
        "annotated_frames": sum(len(reader.annotated_frames(v)) for v in clips.videos),
    }
    manifest = Path(config.dataset.root) / MANIFEST
    if manifest.is_file():
        try:
            content = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{manifest}: expected the release's JSON manifest, got: {exc}") from exc
        keys = ("release", "store", "policy", "threshold", "risk", "counts")
        data["release"] = {k: content.get(k) for k in keys} | {"manifest_sha256": file_sha256(manifest)}
    return clips, data


def model_jf(
    model: ModelConfig,
    dataset: DatasetConfig,
    store: Path | str | None = None,
    heads: HeadsConfig | None = None,
) -> float:
    """J&F (DAVIS protocol) of plain propagation from the first-frame masks of ``dataset``.

    Labels the dataset into ``store`` (a temporary store, deleted after, when None) with the
    model and evaluates it against the dataset's ground truth.
    """
    temporary = None
    if store is None:
        temporary = tempfile.mkdtemp(prefix="usam-jf-")
        store = Path(temporary) / "store.zarr"
    try:
        run = RunConfig(
            name=f"jf-{model.name}",
            dataset=dataset,
            model=model,
            heads=heads or HeadsConfig(),
            store=str(store),
        )
        label_dataset(run)
        result = evaluate_predictions(store, dataset, random_seed=None)
        if result.jf is None:
            raise InputError(f"dataset {dataset.name!r}: expected frames to evaluate, found none.")
        return float(result.jf.jf_mean)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def write_copy_first_mask(
    dataset: DatasetConfig, out_dir: Path, videos: Sequence[str] | None = None
) -> list[str]:
    """Write the trivial baseline as DAVIS-layout predictions: frame 0's annotation on every frame.

    ``<out_dir>/<video>/%05d.png`` palette PNGs, one per frame, for ``videos`` (default every
    video of the dataset config), for users who evaluate it like any method's predictions;
    :func:`copy_first_mask_jf` needs no files. Returns the videos written.
    """
    reader = open_dataset(dataset)
    videos = list(videos) if videos is not None else reader.list_videos()
    for video_id in videos:
        ref = reader.video(video_id)
        first = reader.ground_truth(video_id, reader.annotated_frames(video_id)[0])
        index_map = CopyFirstMask.of(first, ref.height, ref.width).index_map
        out = Path(out_dir) / video_id
        out.mkdir(parents=True, exist_ok=True)
        for frame in range(ref.num_frames):
            write_palette_png(out / f"{frame:05d}.png", index_map)
    return videos


def copy_first_mask_jf(dataset: DatasetConfig) -> float:
    """J&F of the trivial baseline: the first-frame annotation copied to every frame (every
    video of the dataset config, DAVIS protocol, computed in memory)."""
    result = evaluate_copy_first_mask(dataset)
    if result.jf is None:
        raise InputError(f"dataset {dataset.name!r}: expected frames to evaluate, found none.")
    return float(result.jf.jf_mean)
