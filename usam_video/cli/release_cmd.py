"""``usam-video release``, ``verify-release`` and ``audit``: training datasets out of a store.

All three run in this process (no Prefect; the ``release`` flow is for scheduled releases):
a release reads masks and frames and writes files, it runs no model. Bad input exits with
code 2 and one line naming what is wrong; the store is never written.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from usam_video.cli.app import STORE_HELP, app, console, err_console, fail
from usam_video.errors import UsamVideoError

__all__ = ["audit_cmd", "release", "train_release_head_cmd", "verify_release_cmd"]


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


@app.command()
def release(
    store: str = typer.Argument(..., help=STORE_HELP),
    fmt: str = typer.Option(..., "--format", help="sav, davis, ytvis or coco"),
    out: Path = typer.Option(..., "--out", help="new (or empty) folder, or an earlier release to replace"),
    policy: Path | None = typer.Option(
        None, "--policy", help="release policy YAML (default: configs/release/default.yaml's settings)"
    ),
    max_risk: float | None = typer.Option(
        None,
        "--max-risk",
        help="pick the threshold so that the share of bad labels (IoU < 0.5) stays below this",
    ),
    delta: float = typer.Option(0.1, "--delta", help="probability that the risk guarantee fails"),
    audit_size: int | None = typer.Option(
        None,
        "--audit-size",
        help="audit a stratified sample of this many candidates (default: all with truth)",
    ),
    audit_seed: int = typer.Option(0, "--audit-seed", help="seed of the audit sample"),
    audit: Path | None = typer.Option(
        None,
        "--audit",
        help="a reviewed audit export ('usam-video audit') as the truth, instead of ground truth",
    ),
    starts: int = typer.Option(1, "--starts", help="fixed-sequence starting points sharing --delta"),
    video: list[str] = typer.Option(None, "--video", help="only these videos (repeatable)"),
    split: list[str] = typer.Option(
        None, "--split", help="NAME=FRACTION of videos (repeatable); the rest is train"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the split by video"),
    require_complete: bool = typer.Option(
        False,
        "--require-complete",
        help="refuse if any video is incomplete or failed instead of leaving it out",
    ),
    force: bool = typer.Option(False, "--force", help="replace a non-empty --out that is not a release"),
) -> None:
    """Write the store's released frame-objects as a training dataset, with a manifest (sha256 of
    every file), a table of every frame-object, and with --max-risk a certified threshold."""
    from usam_video.pipeline.release import load_policy_file, release_store
    from usam_video.release import parse_splits

    try:
        rules = load_policy_file(policy)
        outcome = release_store(
            store, fmt, out, policy=rules, max_risk=max_risk, delta=delta, audit_size=audit_size,
            audit_seed=audit_seed, video_ids=list(video) if video else None,
            splits=parse_splits(list(split) if split else []), seed=seed,
            require_complete=require_complete, force=force, starts=starts, audit_path=audit,
        )  # fmt: skip
    except UsamVideoError as exc:
        fail(exc)
    result = outcome.result
    table = Table(title=f"release {result.release_number} of {store} ({result.format})")
    for col in ("video", "split", "frames written"):
        table.add_column(col)
    for split_name, videos in result.splits.items():
        for video_id in videos:
            table.add_row(escape(video_id), split_name, str(result.frames[video_id]))
    console.print(table)
    counts = result.counts
    console.print(
        f"released {counts['released']} of {counts['frame_objects']} frame-objects "
        f"({counts['released_candidates']} of {counts['candidates']} pseudo-labels: coverage "
        f"{_fmt(result.coverage)})"
    )
    cert = result.certificate
    if cert is not None:
        verdict = "certified" if cert.certified else "NOT certified: no pseudo-label released by score"
        console.print(
            f"risk target {cert.max_risk:g} at delta {cert.delta:g}: {verdict}; audit {cert.audit_size} "
            f"({cert.audit_bad} bad), released audit {cert.released_audit} with {cert.released_bad} bad: "
            f"estimated risk {_fmt(cert.estimated_risk)}, upper bound {_fmt(cert.upper_bound)}"
        )
    for video_id, why in result.skipped.items():
        err_console.print(f"[bold yellow]not released:[/] {escape(video_id)}: {escape(why)}")
    console.print(f"wrote {result.out}")


@app.command("verify-release")
def verify_release_cmd(out: Path = typer.Argument(..., help="a release folder")) -> None:
    """Check every file of a release against its manifest's sha256 (exit 1 on any difference)."""
    from usam_video.release import verify_release

    try:
        problems = verify_release(out)
    except UsamVideoError as exc:
        fail(exc)
    for problem in problems:
        err_console.print(f"[bold red]damaged:[/] {escape(problem)}")
    if problems:
        raise typer.Exit(1)
    console.print(f"{out}: intact (every file matches the manifest)")


@app.command("train-release-head")
def train_release_head_cmd(
    run: Path = typer.Argument(
        ..., help="a run YAML whose model, heads and policy label the training videos"
    ),
    seed: list[int] = typer.Option(
        ..., "--seed", help="generated-video seed (repeatable); never a test seed"
    ),
    out: Path = typer.Option(..., "--out", help="where to write the head (e.g. <heads>/release_head.json)"),
    count: int = typer.Option(48, "--count", help="videos per seed"),
    frames: int = typer.Option(48, "--frames", help="frames per video"),
    purpose: str = typer.Option("heads", "--stream", help="generated stream (heads: the heads' own stream)"),
) -> None:
    """Label generated videos and fit the release head (P(label good) from the stored scores)
    that the 'good_release' score and the default release policy use."""
    from usam_video.config import load_run_config
    from usam_video.pipeline.train_release_head import train_release_head

    try:
        head = train_release_head(
            load_run_config(run), seed, out, count=count, frames=frames, purpose=purpose
        )
    except UsamVideoError as exc:
        fail(exc)
    record = head.record
    console.print(
        f"release head on {len(head.inputs)} stored scores: {record['rows']} rows of seeds {record['seeds']} "
        f"({record['good_share']:.1%} good), final loss {record['final_loss']:.4f}; wrote {out}"
    )


@app.command("audit")
def audit_cmd(
    store: str = typer.Argument(..., help=STORE_HELP),
    n: int = typer.Option(..., "--n", help="how many candidate pseudo-labels to audit"),
    out: Path = typer.Option(..., "--out", help="new (or empty) folder for the audit export"),
    fmt: str = typer.Option("png", "--format", help="cvat, coco or png (as 'export')"),
    seed: int = typer.Option(0, "--seed", help="seed of the sample"),
    strata: int = typer.Option(10, "--strata", help="score strata of the sample (proportional allocation)"),
    policy: Path | None = typer.Option(None, "--policy", help="release policy YAML (its score stratifies)"),
    video: list[str] = typer.Option(None, "--video", help="only these videos (repeatable)"),
    force: bool = typer.Option(False, "--force", help="write into a non-empty --out that is not ours"),
) -> None:
    """Draw a sample of pseudo-labels stratified by score and export their frames for review like
    the queue; give the reviewed folder to 'release --max-risk R --audit DIR' (it never relabels)."""
    from usam_video.pipeline.release import audit_store, load_policy_file

    try:
        result, pool = audit_store(
            store, out, n, fmt=fmt, seed=seed, strata=strata, policy=load_policy_file(policy),
            video_ids=list(video) if video else None, force=force,
        )  # fmt: skip
    except UsamVideoError as exc:
        fail(exc)
    console.print(
        f"audit of {n} of {pool} pseudo-labels on {result.total_frames} frames -> {result.out} "
        f"({result.format}); review the sampled frame-objects, then: usam-video release {store} "
        f"--max-risk R --audit {result.out} ..."
    )
