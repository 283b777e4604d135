"""The review-simulation flow: the ground truth plays the annotator at several human budgets."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import artifact_key_of
from usam_video.config import load_run_config
from usam_video.pipeline import SimulationReport, simulate_review
from usam_video.pipeline.review_simulation import (
    DEFAULT_BUDGETS,
    DEFAULT_FEATURE_CACHE_BYTES,
    review_markdown,
    write_report,
)

__all__ = ["simulate_task", "simulate_review_flow"]


@task(task_run_name="simulate-review")
def simulate_task(
    run_config: str,
    budgets: tuple[float, ...],
    scores: tuple[str, ...] | None,
    seed: int,
    rounds: int | tuple[int, ...] = 1,
    feature_cache_bytes: int = DEFAULT_FEATURE_CACHE_BYTES,
) -> SimulationReport:
    """Label, then spend every budget with every strategy (in ``rounds`` rounds, or once per
    count of rounds) and measure J&F."""
    return simulate_review(
        load_run_config(run_config),
        budgets=budgets,
        scores=scores,
        seed=seed,
        rounds=rounds,
        feature_cache_bytes=feature_cache_bytes,
    )


@flow(name="simulate-review")
def simulate_review_flow(
    run_config: str,
    budgets: tuple[float, ...] = DEFAULT_BUDGETS,
    scores: tuple[str, ...] | None = None,
    seed: int = 0,
    out_dir: str | None = None,
    rounds: int | tuple[int, ...] = 1,
    feature_cache_bytes: int = DEFAULT_FEATURE_CACHE_BYTES,
) -> SimulationReport:
    """J&F gain of a simulated review for every score under every planner, the oracle and random
    (the budget spent in ``rounds`` rounds; ``feature_cache_bytes`` of image-encoder outputs
    kept across relabels); the report as JSON and the gain curves as PNG (in ``out_dir``) and as
    artifacts."""
    report = simulate_task(run_config, budgets, scores, seed, rounds, feature_cache_bytes)
    data = report.as_dict()
    key = artifact_key_of(load_run_config(run_config).name)
    create_table_artifact(data["results"], key=f"{key}-review-simulation", description="gain by strategy")
    png = write_report(report, Path(out_dir))[1] if out_dir is not None else None
    create_markdown_artifact(review_markdown(report, png), key=f"{key}-review-simulation-report")
    return report
