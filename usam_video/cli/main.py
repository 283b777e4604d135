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
from rich.markup import escape
from rich.table import Table

from usam_video.cli.app import app, console, err_console, fail, one_line_task_failures, repo_configs_dir
from usam_video.errors import UsamVideoError

__all__ = ["app", "main", "repo_configs_dir"]

#: The committed weights of the project's trained SAM 2 models and heads (see MODEL_CARD.md there).


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def _completeness(complete: bool, failure: str) -> str:
    """The ``complete`` cell: a video whose labelling failed says why (an mp4 that broke mid-way
    leaves frames never written), one whose run was killed says "interrupted"."""
    if complete:
        return "yes"
    return f"[red]NO (failed: {escape(failure)})[/]" if failure else "NO (interrupted)"


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
            "failure": summary.failure,
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
        fail(exc)
    if as_json:
        print(json.dumps({"store": str(store), "videos": videos}, indent=1))
        return
    table = Table(title=f"{store}")
    columns = ("video", "frames", "objects", "complete", "accepted", "queued (refine/human)", "untrained")
    for col in (*columns, "heads pairing"):
        table.add_column(col)
    for v in videos:
        c = v["status_counts"]
        p = v["provenance"]
        untrained = ", ".join(k for k in ("model", "heads") if p.get(f"{k}_untrained")) or "-"
        table.add_row(
            v["video_id"],
            str(v["frames"]),
            str(len(v["objects"])),
            _completeness(v["complete"], v["failure"]),
            str(c["accepted"]),
            f"{c['queued_refine']}/{c['queued_human']}",
            untrained,
            # Stores written before the pairing was recorded scored with aligned heads.
            p.get("heads_pairing", "not recorded"),
        )
    console.print(table)
    if videos:
        console.print(f"scores: {', '.join(videos[0]['scores'])}")
    else:  # an empty table alone reads as "nothing wrong"
        console.print(
            f"{escape(str(store))}: no video labelled yet. A video is stored from its first labelled "
            "frame on; one whose run failed before its first frame (a missing prompt, unreadable "
            "frames) leaves nothing here: its error is in that run's output.",
            soft_wrap=True,
            highlight=False,
        )


@app.command()
def queue(
    store: Path = typer.Argument(..., help="path of a usam-video Zarr store"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    video: str | None = typer.Option(None, help="only this video"),
) -> None:
    """The queued frame-objects (for refinement or human review) with reasons and scores."""
    from usam_video.store import PseudoLabelStore
    from usam_video.types import Status

    try:
        opened = PseudoLabelStore.open(store, mode="r")
        entries = opened.queue(video)
        # Entries of an incomplete video (killed, or failed mid-way on a broken mp4) are flagged:
        # its later frames were never labelled and the video is redone by the next run.
        incomplete = {
            vid: opened.summary(vid).failure or "interrupted"
            for vid in sorted({e.video_id for e in entries})
            if not opened.is_complete(vid)
        }
    except UsamVideoError as exc:
        fail(exc)
    if as_json:
        rows = [
            {
                "video_id": e.video_id,
                "frame": e.frame_index,
                "object_id": e.object_id,
                "route": e.status.label,
                "reason": e.reason,
                "plan": e.plan,
                "scores": {k: _finite(v) for k, v in e.scores.items()},
                "video_complete": e.video_id not in incomplete,
            }
            for e in entries
        ]
        print(json.dumps({"store": str(store), "queued": rows, "incomplete_videos": incomplete}, indent=1))
        return
    # Split by route as `export` counts: export (without --all-queued) takes the human ones.
    human = sum(e.status == Status.QUEUED_HUMAN for e in entries)
    title = f"{len(entries)} frame-objects: {human} for human review, {len(entries) - human} for refinement"
    table = Table(title=f"queue of {store} ({title})")
    for col in ("video", "frame", "object", "route", "reason", "review plan", "sam_iou"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e.video_id + (" [red](incomplete)[/]" if e.video_id in incomplete else ""),
            str(e.frame_index),
            str(e.object_id),
            e.status.label,
            e.reason,
            escape(e.plan),
            f"{e.scores.get('sam_iou', float('nan')):.3f}",
        )
    console.print(table)
    for vid, why in incomplete.items():
        err_console.print(
            f"[bold yellow]warning:[/] video {vid} is incomplete ({escape(why)}): frames after the "
            "failure were never labelled; fix the input and rerun before exporting its queue."
        )


@app.command()
def verify(
    store: Path = typer.Argument(..., help="path of a usam-video Zarr store"),
    video: str | None = typer.Option(None, help="only this video"),
) -> None:
    """Read every chunk of the store (or of one video) and check its checksum. Exit 0 intact,
    1 damaged (each damaged array and chunk named), 3 unverifiable (no damage found, but arrays
    written before checksums, which nothing can prove intact)."""
    from usam_video.store import PseudoLabelStore

    try:
        report = PseudoLabelStore.open(store, mode="r").verify(video)
    except UsamVideoError as exc:
        fail(exc)
    videos = sorted({c.video_id for c in report.checks if c.video_id})
    console.print(
        f"{store}: {len(videos)} video(s), {len(report.checks)} arrays, {report.chunks} chunks read",
        highlight=False,
    )
    for problem in report.problems:
        err_console.print(f"[bold red]damaged:[/] {escape(problem)}", highlight=False)
    if report.unverifiable:
        shown = ", ".join(report.unverifiable[:6]) + (" ..." if len(report.unverifiable) > 6 else "")
        console.print(
            f"unverifiable: {len(report.unverifiable)} array(s) were written before checksums ({shown}); "
            "they read without error but nothing proves their bytes. Relabel to checksum them.",
            highlight=False,
        )
    if not report.intact:
        err_console.print(f"[bold red]{store}: DAMAGED ({len(report.problems)} problem(s))[/]")
        raise typer.Exit(1)
    if report.unverifiable:
        raise typer.Exit(3)
    console.print(f"{store}: intact (every chunk's checksum matches)")


def print_results(results: list[Any]) -> int:
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
        outcome = r.outcome
        if r.outcome == "failed":
            outcome = f"[red]failed[/]: {escape(str(r.error))}"
        elif r.outcome == "skipped":  # by whom: another live run's claim, or already complete
            outcome = f"skipped ({escape(r.error or 'already complete under this config')})"
        table.add_row(
            r.video_id,
            outcome,
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
    from usam_video.pipeline import load_context, prepare_store

    try:
        run_cfg = load_run_config(config)
        # Built here to refuse a bad config before Prefect starts; its random-weight warnings
        # are the flow's to log (once per run, where the dashboard shows them too).
        load_context(run_cfg)
        prepare_store(run_cfg)  # a regular file, a user's folder, a read-only place: refused now
    except UsamVideoError as exc:
        fail(exc)
    from flows.pseudo_label import pseudo_label_dataset

    try:
        with one_line_task_failures():
            results = pseudo_label_dataset(str(config.resolve()))
    except UsamVideoError as exc:
        fail(exc)
    failed = print_results(results)
    console.print(f"store: {run_cfg.store}")
    if failed:
        for r in results:  # whole, on one line each (the table's cell wraps them)
            if r.outcome == "failed":
                line = f"{r.video_id}: {r.error}"
                err_console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
        err_console.print(f"[bold red]{failed} video(s) failed[/]")
        raise typer.Exit(1)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_output"), help="folder for the generated videos, configs and store"),
    videos: int = typer.Option(3, help="generated videos to pseudo-label (never trained on)"),
    frames: int = typer.Option(24, help="frames per video"),
) -> None:
    """Pseudo-label generated videos with the project's trained SAM 2 ("micro") and its USAM
    heads, send the frames the heads doubt to the larger "tiny" model, measure J&F against the
    ground truth, draw the masks coloured by predicted IoU, and release the confident
    pseudo-labels as a training dataset with a certified risk."""
    import yaml

    from usam_video.config import load_dataset_config
    from usam_video.datasets.synthetic import generated_specs, write_davis_dataset
    from usam_video.pipeline.evaluate import evaluate_predictions
    from usam_video.pipeline.overlay import write_overlay
    from usam_video.pipeline.train_model import copy_first_mask_jf

    configs = repo_configs_dir()
    out = out.resolve()
    data_root = out / "dataset"
    try:
        # The "test" seed stream: videos no model or head was trained or validated on.
        names = write_davis_dataset(data_root, generated_specs("test", videos, frames), split="test")
    except UsamVideoError as exc:
        fail(exc)
    dataset = {"name": "generated-demo", "format": "davis", "root": str(data_root), "videos": names}
    run_cfg = {
        "name": "demo",
        "dataset": dataset,
        "model": str(configs / "models" / "micro.yaml"),
        "heads": {
            "directory": str(configs.parent / "usam_video" / "weights" / "heads-micro"),
            "token_dim": 128,
        },
        "policy": str(configs / "policies" / "trained.yaml"),
        "store": str(out / "demo.zarr"),
    }
    out.mkdir(parents=True, exist_ok=True)
    run_path = out / "demo-run.yaml"
    run_path.write_text(yaml.safe_dump(run_cfg, sort_keys=False))
    (out / "demo-dataset.yaml").write_text(yaml.safe_dump(dataset, sort_keys=False))
    console.print(f"generated {len(names)} videos in {data_root}; pseudo-labelling them ({run_path}) ...")
    run(run_path)
    store = out / "demo.zarr"
    console.print("rerunning the frames routed to the larger SAM 2 ('tiny') ...")
    from usam_video.cli.refine_cmd import refine

    refine(store, None)
    inspect(store, as_json=False)
    try:
        config = load_dataset_config(out / "demo-dataset.yaml")
        result = evaluate_predictions(store, config, random_seed=None)
        baseline = copy_first_mask_jf(config)
        overlays = [
            write_overlay(store, config, name, out / f"overlay-{name}.png", score="iou_video")
            for name in names
        ]
    except UsamVideoError as exc:
        fail(exc)
    if result.jf is not None:
        console.print(
            f"J&F against the ground truth: {result.jf.jf_mean:.3f} "
            f"(copying the first mask to every frame: {baseline:.3f})"
        )
    entries = [e for e in _queue_entries(store) if e.plan]
    plan = Table(title=f"review plan: {len(entries)} corrections asked of a human (usam-video queue {store})")
    for col in ("video", "frame", "object", "iou_video", "why"):
        plan.add_column(col)
    for e in entries:
        iou = e.scores.get("iou_video", float("nan"))
        plan.add_row(e.video_id, str(e.frame_index), str(e.object_id), f"{iou:.2f}", escape(e.plan))
    console.print(plan)
    from usam_video.pipeline.review import write_review_plan

    for name in names:
        drawn = write_review_plan(store, name, out / f"plan-{name}.png")
        console.print(f"review plan (timeline, picks marked): {drawn}")
    for path in overlays:
        console.print(f"overlay (masks coloured by predicted IoU): {path}")
    from usam_video.pipeline.report import write_static_report

    try:
        # The demo owns its output folder: a report from before marker files is replaced too.
        index = write_static_report(store, out / "report", config, force=True)
    except UsamVideoError as exc:
        fail(exc)
    console.print(f"review report (open in a browser): {index}")
    # What a curation run ends in: the released pseudo-labels as a training dataset (sam2's SA-V
    # layout), the threshold certified on the generated videos' ground truth.
    from usam_video.pipeline.release import release_store

    try:
        released = release_store(store, "sav", out / "release-sav", max_risk=0.1, force=True).result
    except UsamVideoError as exc:
        fail(exc)
    cert = released.certificate
    verdict = (
        f"risk <= 0.1 certified (upper bound {cert.upper_bound:.3f} on {cert.released_audit} audited)"
        if cert is not None and cert.certified
        else "no threshold certified on so few videos: prompts and corrections only"
    )
    console.print(
        f"training dataset (SA-V layout, sam2's JSONRawDataset reads it): {released.out}; released "
        f"{released.counts['released']} of {released.counts['frame_objects']} frame-objects; {verdict}"
    )


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
