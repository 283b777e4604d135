"""The project's own SAM 2 models: ``generate`` videos, ``train-model``, ``baseline`` predictions."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from usam_video.cli.app import app, console, fail
from usam_video.errors import UsamVideoError

__all__ = ["baseline", "generate", "self_train", "train_model", "train_sam2"]


@app.command()
def generate(
    purpose: str = typer.Argument(..., help="val (validation figures), heads (heads training) or test"),
    root: Path = typer.Argument(..., help="dataset root; written in the DAVIS 2017 layout"),
    count: int = typer.Option(12, help="number of videos"),
    frames: int = typer.Option(24, help="frames per video"),
    height: int = typer.Option(96),
    width: int = typer.Option(128),
    seed: int = typer.Option(0, help="dataset seed (each purpose has its own seed stream)"),
    max_objects: int = typer.Option(3, help="video i has 1 + i % max_objects objects"),
) -> None:
    """Write generated videos with ground truth (rich style: the models' training distribution)."""
    from usam_video.datasets.synthetic import generated_specs, write_davis_dataset

    try:
        specs = generated_specs(purpose, count, frames, height, width, seed, max_objects)
        names = write_davis_dataset(root, specs, split=purpose)
    except UsamVideoError as exc:
        fail(exc)
    console.print(f"wrote {len(names)} {purpose} videos ({names[0]} .. {names[-1]}) to {root}")


@app.command("train-model")
def train_model(
    config: Path = typer.Argument(..., help="a train-model YAML (configs/training/*.yaml)"),
    max_minutes: float | None = typer.Option(
        None, help="stop after this long; the next call resumes from the state checkpoint"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Train one of the project's SAM 2 models on generated clips, or fine-tune one on a dataset
    such as a release (resumable; CPU or GPU)."""
    from usam_video.config import load_train_model_config
    from usam_video.pipeline.train_model import train_model as run_training

    try:
        cfg = load_train_model_config(config)
        result = run_training(cfg, max_minutes=max_minutes, log=console.print)
    except UsamVideoError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(result.as_dict(), indent=1))
    elif result.finished:
        console.print(f"{result.name}: {result.steps_done} steps, weights {result.weights}")
    else:
        console.print(
            f"{result.name}: stopped at step {result.steps_done}/{result.steps_planned}; "
            "run the same command again to resume"
        )


@app.command("train-sam2")
def train_sam2(
    config: Path = typer.Argument(..., help="a sam2 trainer YAML (configs/training/sam2-trainer/*.yaml)"),
    release: Path = typer.Argument(..., help="a release in the sav layout (usam-video release --format sav)"),
    overrides: list[str] | None = typer.Argument(
        None, help="Hydra overrides of the config, KEY=VALUE (e.g. scratch.num_frames=8)"
    ),
    steps: int | None = typer.Option(None, help="optimiser steps (default: the config's scratch.steps)"),
    lr: float | None = typer.Option(None, help="base learning rate (default: the config's scratch.base_lr)"),
    out: Path = typer.Option(
        Path("build/training/sam2-trainer"), help="output folder (new, empty or an earlier train-sam2 output)"
    ),
    force: bool = typer.Option(False, "--force", help="write into a folder this command did not create"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Fine-tune a model on a release with SAM 2's own trainer (sam2's training package:
    Trainer, SAM2Train, its VOS data pipeline and MultiStepMultiMasksAndIous) on the CPU, one
    process (gloo).

    The release is read in the sav layout by sam2's JSONRawDataset, which drops every frame with
    a null masklet entry (a frame-object the release left out): only frames whose every object is
    released train, and a video with fewer of them than a clip's length is left out. The command
    prints how many frames that keeps. Writes the trainer's checkpoint (checkpoints/checkpoint.pt)
    and each step's loss (losses.json) to --out; prints the first and last loss."""
    from usam_video.engine.sam2_trainer import train_with_sam2_trainer

    try:
        result = train_with_sam2_trainer(
            config, release, out, steps=steps, lr=lr, overrides=overrides or [], force=force
        )
    except UsamVideoError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(result.as_dict(), indent=1))
        return
    console.print(result.frames.summary(), markup=False)
    console.print(
        f"{len(result.losses)} steps ({result.seconds_per_step:.2f} s/step, setup included): "
        f"loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}; "
        f"checkpoint {result.checkpoint}, losses {result.out / 'losses.json'}",
        markup=False,
    )


@app.command()
def baseline(
    dataset: Path = typer.Argument(..., help="a dataset YAML with ground truth"),
    out: Path = typer.Argument(..., help="folder for DAVIS-layout predictions"),
) -> None:
    """Write the copy-the-first-mask baseline as predictions (evaluate them with `evaluate`)."""
    from usam_video.config import load_dataset_config
    from usam_video.pipeline.train_model import write_copy_first_mask

    try:
        videos = write_copy_first_mask(load_dataset_config(dataset), out)
    except UsamVideoError as exc:
        fail(exc)
    console.print(f"wrote the copy-first-mask baseline of {len(videos)} videos to {out}")


@app.command("self-train")
def self_train(
    config: Path = typer.Argument(..., help="a self-train YAML (configs/self-train/*.yaml)"),
) -> None:
    """The semi-supervised experiment: a teacher labels a generated pool, one release per arm
    (every pseudo-label, risk-controlled, reviewed, ground truth), a student fine-tuned on each,
    J&F of every arm on held-out test sets (resumable: run it again after a stop)."""
    from usam_video.config import load_self_train_config
    from usam_video.pipeline.self_train import self_train as run_experiment

    try:
        cfg = load_self_train_config(config)
        results = run_experiment(cfg, log=console.print)
    except UsamVideoError as exc:
        fail(exc)
    console.print((Path(cfg.out) / "results.md").read_text(), markup=False)
    console.print(f"{len(results)} arms; results in {Path(cfg.out) / 'results.json'}")
