"""``usam-video simulate-review RUN.yaml``: one review loop with the ground truth as annotator."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from usam_video.cli.main import _fail, app, console
from usam_video.errors import UsamVideoError

__all__ = ["simulate_review_cmd"]


@app.command("simulate-review")
def simulate_review_cmd(
    config: Path = typer.Argument(..., help="a run YAML whose dataset has ground truth"),
    budget: float = typer.Option(0.05, help="fraction of frame-objects the simulated humans correct"),
    seed: int = typer.Option(0, help="seed of the random strategy"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """J&F before and after correcting the budget's frame-objects chosen by USAM, SamScore, random."""
    from usam_video.config import load_run_config

    try:
        load_run_config(config)
    except UsamVideoError as exc:
        _fail(exc)
    from flows.simulate import simulate_review_flow

    try:
        report = simulate_review_flow(str(config.resolve()), budget, seed)
    except UsamVideoError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(report.as_dict(), indent=1))
        return
    table = Table(title=f"review loop at {budget:.0%}: {report.budget} of {report.candidates} frame-objects")
    for col in ("strategy", "priority", "J&F before", "J&F after", "gain"):
        table.add_column(col)
    for r in report.results:
        table.add_row(r.strategy, r.priority, f"{r.jf_before:.4f}", f"{r.jf_after:.4f}", f"{r.gain:+.4f}")
    console.print(table)
