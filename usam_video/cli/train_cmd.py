"""``usam-video train-heads CONFIG``: record targets on a dataset with ground truth, train heads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from usam_video.cli.app import app, console, fail
from usam_video.errors import UsamVideoError

__all__ = ["train_heads", "print_train_report"]


def print_train_report(report: Any) -> None:
    """A rich table of the heads' validation figures, with the SamScore and random baselines."""
    table = Table(
        title=f"USAM heads -> {report.heads_dir} (validation videos: {', '.join(report.val_videos)})"
    )
    columns = (
        "head",
        "train rows",
        "val rows",
        "MAE",
        "R2",
        "Pearson",
        "Spearman",
        "relative AUC",
        "SamScore AUC",
        "random AUC",
        "beats SamScore",
        "beats random",
    )
    for col in columns:
        table.add_column(col)

    def f(v: float) -> str:
        return "-" if not math.isfinite(v) else f"{v:.3f}"

    def yes_no(v: bool | None) -> str:
        return "-" if v is None else ("yes" if v else "no")

    for h in report.heads:
        table.add_row(
            h.name,
            str(h.train_rows),
            str(h.val_rows),
            f(h.mae),
            f(h.r2),
            f(h.pearson),
            f(h.spearman),
            f(h.relative_auc),
            f(h.samscore_relative_auc),
            f(h.random_relative_auc),
            yes_no(h.beats_samscore),
            yes_no(h.beats_random),
        )
    console.print(table)
    console.print(
        "relative AUC: area of the mIoU curve when the rows ranked most uncertain are refined first, "
        "over the oracle's (1 = oracle); SamScore ranks by 1 - SAM 2's predicted IoU, random is the "
        "expected random order; '-': undefined (SamScore not recorded in this container, or too few rows)."
    )
    if report.skipped_targets:
        console.print(f"targets without data (no head trained): {', '.join(report.skipped_targets)}")


@app.command("train-heads")
def train_heads(
    config: Path = typer.Argument(..., help="a heads-training YAML (configs/runs/*train-heads*.yaml)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Train USAM heads on the video tokens of a dataset with ground truth (Prefect flow)."""
    from usam_video.config import load_train_heads_config

    try:
        load_train_heads_config(config)
    except UsamVideoError as exc:
        fail(exc)
    from flows import bind_embedded_server
    from flows.train_heads import train_heads_flow

    bind_embedded_server()  # before the first flow run: see flows/__init__.py

    try:
        report = train_heads_flow(str(config.resolve()))
    except UsamVideoError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        print_train_report(report)
