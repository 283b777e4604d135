"""The review-simulation flow: the ground truth plays the annotator at a human budget."""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.pseudo_label import _artifact_key
from usam_video.config import load_run_config
from usam_video.pipeline import SimulationReport, simulate_review

__all__ = ["simulate_task", "simulate_review_flow"]


@task(task_run_name="simulate-review")
def simulate_task(run_config: str, budget: float, seed: int) -> SimulationReport:
    """Label, then spend the budget with every strategy and measure J&F."""
    return simulate_review(load_run_config(run_config), budget_fraction=budget, seed=seed)


@flow(name="simulate-review")
def simulate_review_flow(run_config: str, budget: float = 0.05, seed: int = 0) -> SimulationReport:
    """J&F before and after one review loop: USAM-routed vs lowest SamScore vs random frames."""
    report = simulate_task(run_config, budget, seed)
    data = report.as_dict()
    key = _artifact_key(load_run_config(run_config).name)
    create_table_artifact(data["results"], key=f"{key}-review-simulation", description="J&F per strategy")
    lines = [
        f"# One review loop at a {budget:.0%} human budget",
        f"{report.budget} of {report.candidates} frame-objects corrected by the ground truth.",
        "",
        "| strategy | priority | J&F before | J&F after | gain |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['strategy']} | {r['priority']} | {r['jf_before']} | {r['jf_after']} | {r['gain']} |"
        )
    create_markdown_artifact("\n".join(lines), key=f"{key}-review-simulation-report")
    return report
