"""The release flow: a store's released frame-objects as a training dataset, on a schedule or
on demand, with a table artifact of what went out and why the rest did not.

One task (references in, a small frozen result out). It does not retry: a bad format, a folder
that is not ours or a damaged store fails the same way every time, and a failed release leaves
nothing under its output name (it writes under a temporary name and renames at the end).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.common import store_artifact_key
from usam_video.pipeline.release import ReleaseOutcome, load_policy_file, release_store

__all__ = ["release_flow", "release_rows", "release_task", "artifact_key"]


def artifact_key(store: str) -> str:
    """``release-<store name>`` as a Prefect artifact key (lowercase, digits, dashes)."""
    return store_artifact_key("release", store)


@task(task_run_name="release-{fmt}")
def release_task(
    store: str,
    fmt: str,
    out: str,
    policy: str | None = None,
    max_risk: float | None = None,
    delta: float = 0.1,
    splits: dict[str, float] | None = None,
    seed: int = 0,
    require_complete: bool = False,
) -> ReleaseOutcome:
    """Release ``store`` as ``fmt`` into ``out`` (see :func:`usam_video.pipeline.release.release_store`)."""
    return release_store(
        store, fmt, out, policy=load_policy_file(policy), max_risk=max_risk, delta=delta,
        splits=splits, seed=seed, require_complete=require_complete,
    )  # fmt: skip


def release_rows(outcome: ReleaseOutcome) -> list[dict[str, Any]]:
    """Rows of the release's table artifact: one per video, left-out videos with why."""
    result = outcome.result
    split_of = {v: s for s, videos in result.splits.items() for v in videos}
    rows: list[dict[str, Any]] = [
        {"video": v, "split": split_of.get(v, ""), "frames": n, "note": ""} for v, n in result.frames.items()
    ]
    rows += [{"video": v, "split": "", "frames": 0, "note": why} for v, why in result.skipped.items()]
    return rows


@flow(name="release")
def release_flow(
    store: str,
    fmt: str,
    out: str,
    policy: str | None = None,
    max_risk: float | None = None,
    delta: float = 0.1,
    splits: dict[str, float] | None = None,
    seed: int = 0,
    require_complete: bool = False,
) -> ReleaseOutcome:
    """Release a store as a training dataset; publishes the table artifact ``release-<store>``."""
    outcome = release_task.submit(
        store, fmt, out, policy, max_risk, delta, splits, seed, require_complete
    ).result()
    result, cert = outcome.result, outcome.result.certificate
    risk = (
        "no risk certified (no --max-risk)"
        if cert is None
        else f"risk <= {cert.max_risk:g} at delta {cert.delta:g}: "
        + (
            f"certified, bound {cert.upper_bound:.3f}"
            if cert.certified
            else "not certified (nothing by score)"
        )
    )
    create_table_artifact(
        key=artifact_key(store),
        table=release_rows(outcome),
        description=(
            f"Release {result.release_number} of {store} as {fmt} in {out}: {result.counts['released']} of "
            f"{result.counts['frame_objects']} frame-objects released; {risk}."
        ),
    )
    get_run_logger().info("release %s of %s written to %s; %s", result.release_number, store, out, risk)
    return outcome
