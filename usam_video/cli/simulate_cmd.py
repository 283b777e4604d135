"""``usam-video simulate-review RUN.yaml``: one review loop with the ground truth as annotator;
``usam-video simulate-clicks RUN.yaml``: dense prompts on the least certain frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from usam_video.cli.app import app, console, err_console, fail
from usam_video.errors import UsamVideoError

if TYPE_CHECKING:
    from usam_video.pipeline.review_simulation import SimulationReport

__all__ = ["simulate_clicks_cmd", "simulate_review_cmd"]


@app.command("simulate-review")
def simulate_review_cmd(
    config: Path = typer.Argument(..., help="a run YAML whose dataset has ground truth"),
    budget: list[float] = typer.Option(
        [0.01, 0.02, 0.05, 0.10], help="fractions of the candidate frame-objects corrected (repeat)"
    ),
    score: list[str] = typer.Option(
        [], help="scores to plan with (repeat; default every stored score with a direction)"
    ),
    seed: int = typer.Option(0, help="seed of the random strategy"),
    out: Path | None = typer.Option(None, help="write simulate-review.json and gain-curves.png here"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    rounds: list[int] = typer.Option(
        [1],
        min=1,
        help="split each budget over this many rounds, each planned on rescored tables "
        "(repeat to compare: --rounds 1 --rounds 3)",
    ),
    feature_cache_mb: int = typer.Option(
        1024, min=0, help="MiB of image-encoder outputs kept across relabels (0: none; same results)"
    ),
) -> None:
    """J&F gain of a simulated review at each budget: every stored score under the per-frame
    planner and the review planner (onsets of low runs), the oracle (true IoU) and random; with
    ``--rounds K`` the budget is spent in K rounds, each planned on the tables rescored after
    relabelling from the corrections so far (``--rounds 1 --rounds 3``: both, in one table)."""
    from usam_video.config import load_run_config

    try:
        load_run_config(config)
    except UsamVideoError as exc:
        fail(exc)
    from flows import bind_embedded_server
    from flows.simulate import simulate_review_flow

    bind_embedded_server()  # before the first flow run: see flows/__init__.py

    try:
        report = simulate_review_flow(
            str(config.resolve()),
            tuple(budget),
            tuple(score) if score else None,
            seed,
            str(out) if out is not None else None,
            tuple(rounds),
            feature_cache_mb << 20,
        )
    except UsamVideoError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(report.as_dict(), indent=1))
        return
    gains = report.gains()
    table = Table(
        title=f"simulated review: J&F gain by budget (before {report.jf_before:.4f}, "
        f"{report.candidates} candidates, default {report.default_strategy})"
    )
    table.add_column("strategy")
    for b in report.budgets:
        table.add_column(f"{b:.0%} ({report.budgets[b]})", justify="right")
    for name in report.strategies:
        label = f"[bold]{name}[/] (default)" if name == report.default_strategy else name
        table.add_row(label, *(f"{gains[name][b]:+.4f}" for b in report.budgets))
    console.print(table)
    if report.rounds > 1:
        console.print(_rounds_table(report))
    if out is not None:
        console.print(f"report and gain curves in {out}")


def _rounds_table(report: SimulationReport) -> Table:
    """J&F gain after each round (``r1 / r2 / ...``) per strategy and budget."""
    table = Table(title="J&F gain after each round")
    table.add_column("strategy")
    for b in report.budgets:
        table.add_column(f"{b:.0%} ({report.budgets[b]})", justify="right")
    for name, by_budget in report.round_gains().items():
        table.add_row(name, *(" / ".join(f"{g:+.4f}" for g in by_budget[b]) for b in report.budgets))
    return table


@app.command("simulate-clicks")
def simulate_clicks_cmd(
    config: Path = typer.Argument(..., help="a run YAML whose dataset has ground truth"),
    fraction: float = typer.Option(0.05, help="fraction of the frame-objects that get a dense prompt"),
    score: str | None = typer.Option(
        None, help="score ranking the frame-objects (default iou_unsupervised, else sam_iou)"
    ),
    points: int = typer.Option(8, help="clicks per dense prompt"),
    erosion: int = typer.Option(1, help="pixels the ground truth is eroded by before clicking"),
    seed: int = typer.Option(0, help="seed of the clicks and of the random pick"),
    keep: Path | None = typer.Option(None, help="keep the relabelled stores here (a new folder)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """J&F before and after a dense prompt (clicks inside the ground truth, given to SAM 2 as
    corrections) on the least certain frame-objects by a score, and on as many random ones."""
    from usam_video.config import load_run_config
    from usam_video.pipeline.click_simulation import simulate_clicks

    try:
        report = simulate_clicks(load_run_config(config), fraction, score, points, erosion, seed, keep=keep)
    except UsamVideoError as exc:
        fail(exc)
    for warning in report.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}")
    if as_json:
        print(json.dumps(report.as_dict(), indent=1))
        return
    table = Table(
        title=f"dense prompts ({report.dense_points} clicks) on {report.picked} of {report.candidates} "
        f"frame-objects ({fraction:.0%}), least certain by {report.score} ({report.order})"
    )
    for col in ("pick", "picked", "J&F before", "J&F after", "gain"):
        table.add_column(col)
    for r in report.results:
        table.add_row(
            r.pick,
            str(len(r.frame_objects)),
            f"{r.jf_before:.4f}",
            f"{r.jf_after:.4f}",
            f"{r.gain:+.4f}",
        )
    console.print(table)
