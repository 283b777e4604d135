"""The ``usam-video`` command line.

``inspect`` and ``queue`` read a store with the library alone. ``run`` and ``demo`` start the
Prefect flow: this module is the composition root, so it imports ``flows`` lazily, inside those
two commands only (the rest of ``usam_video`` never imports Prefect).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from usam_video.errors import UsamVideoError

__all__ = ["app", "main", "repo_configs_dir"]

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Video pseudo-labelling with SAM 2 and USAM."
)
# Wide enough that tables are not cut when output goes to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def repo_configs_dir() -> Path:
    """The project's ``configs/`` folder (beside the package in a checkout)."""
    path = Path(__file__).resolve().parents[2] / "configs"
    if not path.is_dir():
        raise UsamVideoError(
            f"{path}: expected the project's configs/ folder beside the package, found nothing. "
            "Run from a checkout installed with 'pip install -e .'."
        )
    return path


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def _inspect_data(store_path: Path, with_frames: bool) -> list[dict[str, Any]]:
    from usam_video.store import PseudoLabelStore
    from usam_video.types import Status

    store = PseudoLabelStore.open(store_path, mode="r")
    videos = []
    for video_id in store.videos():
        summary = store.summary(video_id)
        item: dict[str, Any] = {
            "video_id": video_id,
            "complete": summary.complete,
            "frames": summary.num_frames,
            "height": summary.height,
            "width": summary.width,
            "objects": list(summary.object_ids),
            "status_counts": summary.status_counts,
            "scores": list(summary.score_names),
            "provenance": summary.provenance,
        }
        if with_frames:
            table = store.frame_table(video_id)
            frames = []
            for t in range(table.status.shape[0]):
                objects = []
                for o, obj_id in enumerate(table.object_ids):
                    objects.append(
                        {
                            "object_id": obj_id,
                            "status": Status(int(table.status[t, o])).label,
                            "reason": table.reason_label(int(table.reason[t, o])),
                            "scores": {
                                n: _finite(v)
                                for n, v in zip(table.score_names, table.scores[t, o], strict=True)
                            },
                        }
                    )
                frames.append({"frame": t, "objects": objects})
            item["frame_scores"] = frames
        videos.append(item)
    return videos


@app.command()
def inspect(
    store: Path = typer.Argument(..., help="path of a usam-video Zarr store"),
    as_json: bool = typer.Option(False, "--json", help="print JSON, with every frame's scores"),
) -> None:
    """Per video: frames, objects, completeness, counts by status, scores present, provenance."""
    try:
        videos = _inspect_data(store, with_frames=as_json)
    except UsamVideoError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({"store": str(store), "videos": videos}, indent=1))
        return
    table = Table(title=f"{store}")
    for col in ("video", "frames", "objects", "complete", "accepted", "queued (refine/human)", "untrained"):
        table.add_column(col)
    for v in videos:
        c = v["status_counts"]
        p = v["provenance"]
        untrained = ", ".join(k for k in ("model", "heads") if p.get(f"{k}_untrained")) or "-"
        table.add_row(
            v["video_id"],
            str(v["frames"]),
            str(len(v["objects"])),
            "yes" if v["complete"] else "NO (interrupted)",
            str(c["accepted"]),
            f"{c['queued_refine']}/{c['queued_human']}",
            untrained,
        )
    console.print(table)
    if videos:
        console.print(f"scores: {', '.join(videos[0]['scores'])}")


@app.command()
def queue(
    store: Path = typer.Argument(..., help="path of a usam-video Zarr store"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    video: str | None = typer.Option(None, help="only this video"),
) -> None:
    """The queued frame-objects (for refinement or human review) with reasons and scores."""
    from usam_video.store import PseudoLabelStore

    try:
        entries = PseudoLabelStore.open(store, mode="r").queue(video)
    except UsamVideoError as exc:
        _fail(exc)
    if as_json:
        rows = [
            {
                "video_id": e.video_id,
                "frame": e.frame_index,
                "object_id": e.object_id,
                "route": e.status.label,
                "reason": e.reason,
                "scores": {k: _finite(v) for k, v in e.scores.items()},
            }
            for e in entries
        ]
        print(json.dumps({"store": str(store), "queued": rows}, indent=1))
        return
    table = Table(title=f"queue of {store} ({len(entries)} frame-objects)")
    for col in ("video", "frame", "object", "route", "reason", "sam_iou"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e.video_id,
            str(e.frame_index),
            str(e.object_id),
            e.status.label,
            e.reason,
            f"{e.scores.get('sam_iou', float('nan')):.3f}",
        )
    console.print(table)


def _print_results(results: list[Any]) -> int:
    table = Table(title="videos")
    for col in (
        "video",
        "outcome",
        "frames",
        "objects",
        "accepted",
        "queued refine",
        "queued human",
        "mean pred. IoU",
        "s",
    ):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.video_id,
            r.outcome if r.outcome != "failed" else f"[red]failed[/]: {r.error}",
            str(r.frames),
            str(r.objects),
            str(r.accepted),
            str(r.queued_refine),
            str(r.queued_human),
            "-" if math.isnan(r.mean_predicted_iou) else f"{r.mean_predicted_iou:.3f}",
            f"{r.seconds:.1f}",
        )
    console.print(table)
    return sum(r.outcome == "failed" for r in results)


@app.command()
def run(config: Path = typer.Argument(..., help="a run YAML (configs/runs/*.yaml)")) -> None:
    """Pseudo-label a dataset with the Prefect flow (embedded server unless PREFECT_API_URL is set)."""
    from usam_video.config import load_run_config
    from usam_video.pipeline import load_context, untrained_warnings

    try:
        run_cfg = load_run_config(config)
        for warning in untrained_warnings(load_context(run_cfg)):
            err_console.print(f"[bold yellow]warning:[/] {warning}")
    except UsamVideoError as exc:
        _fail(exc)
    from flows.pseudo_label import pseudo_label_dataset

    results = pseudo_label_dataset(str(config.resolve()))
    failed = _print_results(results)
    console.print(f"store: {run_cfg.store}")
    if failed:
        err_console.print(f"[bold red]{failed} video(s) failed[/]")
        raise typer.Exit(1)


@app.command()
def demo(
    out: Path = typer.Option(
        Path("demo_output"), help="folder for the generated data, configs, heads and store"
    ),
    train_videos: int = typer.Option(6, help="generated videos the heads are trained on"),
    videos: int = typer.Option(3, help="generated validation videos to pseudo-label"),
    frames: int = typer.Option(12, help="frames per video"),
) -> None:
    """Generate train and validation videos, train USAM heads on the train videos, pseudo-label
    the validation videos with them, and show the store."""
    import yaml

    from usam_video.datasets.synthetic import SyntheticVideoSpec, write_davis_dataset

    configs = repo_configs_dir()
    out = out.resolve()
    data_root = out / "dataset"

    def specs(prefix: str, n: int, seed: int) -> list[SyntheticVideoSpec]:
        return [
            SyntheticVideoSpec(f"{prefix}-{i:03d}", frames, 192, 256, num_objects=1 + i % 3, seed=seed + i)
            for i in range(n)
        ]

    train_names = write_davis_dataset(data_root, specs("train", train_videos, 100), split="train")
    val_names = write_davis_dataset(data_root, specs("val", videos, 0), split="val")
    model = str(configs / "models" / "small-random.yaml")
    heads_dir = out / "heads"
    train_cfg = {
        "name": "demo-heads",
        "dataset": {
            "name": "synthetic-train",
            "format": "davis",
            "root": str(data_root),
            "videos": train_names,
        },
        "models": [{"label": "micro", "model": model}],
        "container": str(out / "train-tokens.zarr"),
        "heads_out": str(heads_dir),
        "optimizer": "adamw",
        "lr": 0.001,
        "epochs": 40,
        "val_fraction": 0.34,
    }
    train_path = out / "demo-train-heads.yaml"
    out.mkdir(parents=True, exist_ok=True)
    train_path.write_text(yaml.safe_dump(train_cfg, sort_keys=False))
    console.print(f"generated {len(train_names)} train and {len(val_names)} validation videos in {data_root}")
    console.print(f"training USAM heads ({train_path}) ...")
    from usam_video.cli.train_cmd import train_heads

    train_heads(train_path, as_json=False)

    store = out / "demo.zarr"
    run_cfg = {
        "name": "demo",
        "dataset": {"name": "synthetic-val", "format": "davis", "root": str(data_root), "videos": val_names},
        "model": model,
        "heads": {"directory": str(heads_dir)},
        "policy": str(configs / "policies" / "demo.yaml"),
        "store": str(store),
    }
    run_path = out / "demo-run.yaml"
    run_path.write_text(yaml.safe_dump(run_cfg, sort_keys=False))
    console.print(f"pseudo-labelling the validation videos ({run_path}) ...")
    run(run_path)
    inspect(store, as_json=False)
    n_queued = len(_queue_entries(store))
    console.print(f"{n_queued} frame-objects queued: usam-video queue {store}")
    err_console.print(
        "[bold yellow]The SAM 2 weights of this demo are RANDOM (untrained): its masks show the pipeline "
        "working, not segmentation quality, and the heads trained on them predict the quality of those "
        "random masks.[/]"
    )


def _all_head_names() -> tuple[str, ...]:
    from usam_video.heads import HEAD_NAMES

    return HEAD_NAMES


def _queue_entries(store: Path) -> list[Any]:
    from usam_video.store import PseudoLabelStore

    return PseudoLabelStore.open(store, mode="r").queue()


def main() -> None:
    """Console-script entry point."""
    # sam2 prints a tqdm bar per propagation; the flow's progress artifact and our tables
    # replace it. TQDM_DISABLE=0 in the environment brings it back.
    os.environ.setdefault("TQDM_DISABLE", "1")
    app()


if __name__ == "__main__":
    sys.exit(main())
