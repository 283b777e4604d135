"""The review-simulation flow: the ground truth plays the annotator at several human budgets."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import artifact_key_of
from usam_video.config import load_run_config
from usam_video.pipeline import SimulationReport, simulate_review
from usam_video.pipeline.review_simulation import DEFAULT_BUDGETS, review_markdown, write_report

__all__ = ["simulate_task", "simulate_review_flow"]


@task(task_run_name="simulate-review")
def simulate_task(
    run_config: str, budgets: tuple[float, ...], scores: tuple[str, ...] | None, seed: int
) -> SimulationReport:
    """Label, then spend every budget with every strategy and measure J&F."""
    return simulate_review(load_run_config(run_config), budgets=budgets, scores=scores, seed=seed)


@flow(name="simulate-review")
def simulate_review_flow(
    run_config: str,
    budgets: tuple[float, ...] = DEFAULT_BUDGETS,
    scores: tuple[str, ...] | None = None,
    seed: int = 0,
    out_dir: str | None = None,
) -> SimulationReport:
    """J&F gain of a simulated review for every score under every planner, the oracle and random;
    the report as JSON and the gain curves as PNG (in ``out_dir``) and as artifacts."""
    report = simulate_task(run_config, budgets, scores, seed)
    data = report.as_dict()
    key = artifact_key_of(load_run_config(run_config).name)
    create_table_artifact(data["results"], key=f"{key}-review-simulation", description="gain by strategy")
    png = write_report(report, Path(out_dir))[1] if out_dir is not None else None
    create_markdown_artifact(review_markdown(report, png), key=f"{key}-review-simulation-report")
    return report
