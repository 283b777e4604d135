"""``usam-video evaluate``: J&F of a store or a predictions folder, and the ranking of scores.

Runs :func:`usam_video.pipeline.evaluate.evaluate_predictions` in this process (no Prefect):
evaluation reads masks and PNGs only and takes seconds to minutes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from usam_video.cli.app import app, console, err_console, fail
from usam_video.errors import UsamVideoError

__all__ = ["evaluate", "print_evaluation_result"]


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_evaluation_result(result: Any, files: list[Path]) -> None:
    scale = "x100" if result.protocol == "sav" else "[0, 1]"
    g = result.global_scores()
    if result.jf is not None:
        totals = Table(title=f"{result.dataset}: {result.protocol} protocol ({scale}) of {result.source}")
        for col in ("J&F", "J-Mean", "F-Mean", "videos", "objects"):
            totals.add_column(col, justify="right")
        totals.add_row(
            _cell(g["J&F"]),
            _cell(g["J"]),
            _cell(g["F"]),
            str(len(result.videos)),
            str(len(result.jf.objects)),
        )
        console.print(totals)
        per_sequence = Table(title="per sequence (means over its objects)")
        per_sequence.add_column("sequence")
        for col in ("objects", "frames", "J&F", "J-Mean", "F-Mean"):
            per_sequence.add_column(col, justify="right")
        for row in result.sequence_rows():
            per_sequence.add_row(
                row["sequence"],
                str(row["objects"]),
                str(row["frames"]),
                _cell(row["J&F"]),
                _cell(row["J"]),
                _cell(row["F"]),
            )
        console.print(per_sequence)
    for video, reason in result.skipped.items():
        err_console.print(f"[bold yellow]not evaluated:[/] {video}: {reason}")
    for note in result.notes:
        err_console.print(f"[bold yellow]left out:[/] {escape(note)}")
    if result.ranking is not None:
        ranking = Table(
            title=f"ranking of uncertainty scores: {result.ranking.n_items} frame-objects, base mIoU "
            f"{result.ranking.base_miou:.4f}, refined = ground truth"
        )
        ranking.add_column("score")
        ranking.add_column("direction")
        for col in ("relative AUC", "vs random", "Pearson", "Spearman"):
            ranking.add_column(col, justify="right")
        for row in result.ranking_rows():
            ranking.add_row(
                row["score"],
                row["direction"],
                _cell(row["relative_auc"]),
                _cell(row["relative_auc_vs_random"]),
                _cell(row["pearson"]),
                _cell(row["spearman"]),
            )
        console.print(ranking)
        console.print("Pearson/Spearman: of the uncertainty (confidences negated) with the true IoU.")
    if result.ranking_note and result.source_kind == "store":
        err_console.print(f"[bold yellow]ranking:[/] {result.ranking_note}")
    for name, reason in result.unranked_scores.items():
        err_console.print(f"[bold yellow]score not ranked:[/] {name}: {reason}")
    for path in files:
        console.print(f"wrote {path}")


@app.command()
def evaluate(
    source: Path = typer.Argument(
        ...,
        help="a usam-video store, or a folder of predicted masks in DAVIS (<seq>/%05d.png) "
        "or SA-V (<video>/<obj:03d>/%05d.png) layout",
    ),
    dataset: Path = typer.Option(..., "--dataset", help="dataset YAML of the ground truth"),
    protocol: str = typer.Option("davis", "--protocol", help="davis (DAVIS 2017) or sav (SA-V benchmark)"),
    layout: str | None = typer.Option(
        None, "--layout", help="davis or sav, for a predictions folder; detected when left out"
    ),
    videos: list[str] | None = typer.Option(
        None, "--video", help="evaluate only this video (repeat for several); default: the config's"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    out: Path | None = typer.Option(None, "--out", help="folder for evaluation.json and ranking.png"),
) -> None:
    """J&F of a store or predictions folder; for a store also how well its scores rank errors.

    The ranking follows UncertainSAM: relative AUC, Pearson and Spearman of every score.
    """
    from usam_video.config import load_dataset_config
    from usam_video.pipeline.evaluate import evaluate_predictions, write_evaluation

    try:
        config = load_dataset_config(dataset)
        result = evaluate_predictions(source, config, protocol, videos or None, layout=layout)
        files = write_evaluation(result, out) if out is not None else []
    except UsamVideoError as exc:
        fail(exc)
    if as_json:
        data = result.as_dict()
        data["files"] = [str(p) for p in files]
        print(json.dumps(data, indent=1))
        return
    print_evaluation_result(result, files)
