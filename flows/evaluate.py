"""The evaluation flow: one task runs the evaluation, the flow publishes a table artifact
(per-sequence J&F and the ranking of scores) and a markdown report with the ranking plot."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from usam_video.config import load_dataset_config
from usam_video.pipeline.evaluate import (
    RANKING_PNG,
    EvaluationResult,
    evaluate_predictions,
    evaluation_markdown,
    write_evaluation,
)

__all__ = ["evaluate_task", "evaluate_flow", "artifact_rows", "artifact_key"]


@task(task_run_name="evaluate-{protocol}")
def evaluate_task(
    source: str, dataset_config: str, protocol: str, out_dir: str | None, layout: str | None = None
) -> EvaluationResult:
    """Evaluate ``source`` and write its files (references in; a small result out, no arrays).

    Not retried: evaluation is deterministic, so a failure repeats.
    """
    result = evaluate_predictions(source, load_dataset_config(Path(dataset_config)), protocol, layout=layout)
    if out_dir is not None:
        write_evaluation(result, out_dir)
    return result


def artifact_key(name: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from any name."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "evaluation"


def artifact_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    """Rows of the table artifact, all with the same columns: the global J&F, one row per
    sequence, then one per ranked score (with the random and oracle references)."""
    empty = dict.fromkeys(("J&F", "J", "F", "direction", "relative_auc", "pearson", "spearman"))
    rows = [{"table": "j&f", "name": "all", **empty, **result.global_scores()}]
    for r in result.sequence_rows():
        rows.append(
            {"table": "j&f", "name": r["sequence"], **empty, "J&F": r["J&F"], "J": r["J"], "F": r["F"]}
        )
    for r in result.ranking_rows():
        scores = {k: r[k] for k in ("direction", "relative_auc", "pearson", "spearman")}
        rows.append({"table": "ranking", "name": r["score"], **empty, **scores})
    return rows


@flow(name="evaluate")
def evaluate_flow(
    source: str,
    dataset_config: str,
    protocol: str = "davis",
    out_dir: str | None = None,
    layout: str | None = None,
) -> EvaluationResult:
    """Evaluate a store or a predictions folder; publish ``evaluate-<dataset>-table`` and
    ``evaluate-<dataset>-report`` artifacts. Files go to ``out_dir`` when given."""
    # Submitted (not called inline) so that the flow's task runner, Dask included, runs it.
    result = evaluate_task.submit(source, dataset_config, protocol, out_dir, layout).result()
    key = artifact_key(f"evaluate-{result.dataset}")
    create_table_artifact(
        artifact_rows(result),
        key=f"{key}-table",
        description=f"J&F ({result.protocol} protocol) of {source}"
        + ("" if result.ranking is None else " and ranking of its uncertainty scores"),
    )
    png: Path | None = None
    with tempfile.TemporaryDirectory() as tmp:
        if result.ranking is not None:
            # The report embeds the plot (a data URI), so it does not depend on out_dir.
            png = Path(out_dir) / RANKING_PNG if out_dir is not None else write_evaluation(result, tmp)[-1]
        markdown = evaluation_markdown(result, png)
    create_markdown_artifact(markdown, key=f"{key}-report", description=f"Evaluation of {source}")
    return result
