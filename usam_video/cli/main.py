"""The ``usam-video`` command line.

``inspect`` and ``queue`` read a store with the library alone. ``run`` and ``demo`` start the
Prefect flow: this module is the composition root, so it imports ``flows`` lazily, where those
two commands start it (the rest of ``usam_video`` never imports Prefect).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from usam_video.cli.app import (
    DASK_ADDRESS_HELP,
    STORE_HELP,
    TASK_RUNNER_HELP,
    app,
    console,
    err_console,
    fail,
    one_line_task_failures,
    repo_configs_dir,
)
from usam_video.errors import UsamVideoError

if TYPE_CHECKING:  # the demo's module loads torch and the engine: imported by the command only
    from usam_video.pipeline.demo import DemoInputs, DemoResult
    from usam_video.store import PseudoLabelStore

__all__ = ["app", "main", "repo_configs_dir"]

#: The committed weights of the project's trained SAM 2 models and heads (see MODEL_CARD.md there).


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def _completeness(complete: bool, failure: str) -> str:
    """The ``complete`` cell: a video whose labelling failed says why (an mp4 that broke mid-way
    leaves frames never written), one whose run was killed says "interrupted"."""
    if complete:
        return "yes"
    return f"[red]NO (failed: {escape(failure)})[/]" if failure else "NO (interrupted)"


def _claims_data(store: PseudoLabelStore) -> list[dict[str, Any]]:
    """The store's claims, live ones first, each with its owner, host and lease left."""
    import time

    now = time.time()
    rows = [
        {
            "video_id": c.video_id,
            "owner": c.owner,
            "host": c.host,
            "pid": c.pid,
            "live": c.live,
            "taken_at": c.taken_at,
            "expires_in_s": round(c.expires_at - now, 1),
        }
        for c in store.claims()
    ]
    return sorted(rows, key=lambda r: (not r["live"], r["video_id"]))


def _print_claims(claims: list[dict[str, Any]]) -> None:
    """Live claims as a table (who is writing what, until when); expired ones counted."""
    live = [c for c in claims if c["live"]]
    if live:
        table = Table(title="live claims (videos being written)")
        for col in ("video", "owner", "host", "lease left"):
            table.add_column(col)
        for c in live:
            table.add_row(c["video_id"], c["owner"], c["host"], f"{c['expires_in_s']:.0f} s")
        console.print(table)
    if len(claims) > len(live):
        console.print(
            f"{len(claims) - len(live)} expired claim(s) (their writers stopped): a run's first "
            "claim removes them, and their videos are labelled again.",
            highlight=False,
        )


def _inspect_data(store: PseudoLabelStore, with_frames: bool) -> list[dict[str, Any]]:
    from usam_video.types import Status

    videos = []
    for summary in store.summaries():  # read concurrently: a store on S3 of thousands of videos
        video_id = summary.video_id
        item: dict[str, Any] = {
            "video_id": video_id,
            "complete": summary.complete,
            "failure": summary.failure,
            "frames": summary.num_frames,
            "height": summary.height,
            "width": summary.width,
            "objects": list(summary.object_ids),
            "status_counts": summary.status_counts,
            "scores": list(summary.score_names),
            "provenance": summary.provenance,
        }
        if with_frames:
            table = store.frame_table(video_id)
            frames = []
            for t in range(table.status.shape[0]):
                objects = []
                for o, obj_id in enumerate(table.object_ids):
                    objects.append(
                        {
                            "object_id": obj_id,
                            "status": Status(int(table.status[t, o])).label,
                            "reason": table.reason_label(int(table.reason[t, o])),
                            "scores": {
                                n: _finite(v)
                                for n, v in zip(table.score_names, table.scores[t, o], strict=True)
                            },
                        }
                    )
                frames.append({"frame": t, "objects": objects})
            item["frame_scores"] = frames
        videos.append(item)
    return videos


def _inspected_rows(videos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``videos`` when at most :data:`PRINTED_ROWS`; else, after a totals line, the incomplete
    videos, then those with the most frame-objects queued for humans (a table of 50,000 rows
    takes minutes to draw and nobody reads it), in store order."""
    if len(videos) <= PRINTED_ROWS:
        return videos
    totals: Counter[str] = Counter()
    for v in videos:
        totals.update(v["status_counts"])
    complete = sum(1 for v in videos if v["complete"])
    console.print(
        f"{len(videos)} videos: {complete} complete, {len(videos) - complete} incomplete; "
        f"{totals['accepted']} accepted, {totals['queued_refine']}/{totals['queued_human']} queued "
        "(refine/human)"
    )
    order = sorted(
        range(len(videos)),
        key=lambda i: (videos[i]["complete"], -videos[i]["status_counts"].get("queued_human", 0), i),
    )
    return [videos[i] for i in sorted(order[:PRINTED_ROWS])]


@app.command()
def inspect(
    store: str = typer.Argument(..., help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print JSON, with every frame's scores"),
) -> None:
    """Per video: frames, objects, completeness, counts by status, scores present, provenance;
    then the live claims (videos being written) with their owners."""
    from usam_video.store import PseudoLabelStore

    try:
        opened = PseudoLabelStore.open(store, mode="r")
        videos = _inspect_data(opened, with_frames=as_json)
        claims = _claims_data(opened)
    except UsamVideoError as exc:
        fail(exc)
    if as_json:
        print(json.dumps({"store": str(store), "videos": videos, "claims": claims}, indent=1))
        return
    shown = _inspected_rows(videos)
    title = f"{store}" if len(shown) == len(videos) else (
        f"{store}: {len(shown)} of {len(videos)} videos, the incomplete and the most queued for "
        "humans first (--json lists every video)"
    )  # fmt: skip
    table = Table(title=title)
    columns = ("video", "frames", "objects", "complete", "accepted", "queued (refine/human)", "untrained")
    for col in (*columns, "heads pairing"):
        table.add_column(col)
    for v in shown:
        c = v["status_counts"]
        p = v["provenance"]
        untrained = ", ".join(k for k in ("model", "heads") if p.get(f"{k}_untrained")) or "-"
        table.add_row(
            v["video_id"],
            str(v["frames"]),
            str(len(v["objects"])),
            _completeness(v["complete"], v["failure"]),
            str(c["accepted"]),
            f"{c['queued_refine']}/{c['queued_human']}",
            untrained,
            # Stores written before the pairing was recorded scored with aligned heads.
            p.get("heads_pairing", "not recorded"),
        )
    console.print(table)
    _print_claims(claims)
    if videos:
        console.print(f"scores: {', '.join(videos[0]['scores'])}")
    else:  # an empty table alone reads as "nothing wrong"
        console.print(
            f"{escape(str(store))}: no video labelled yet. A video is stored from its first labelled "
            "frame on; one whose run failed before its first frame (a missing prompt, unreadable "
            "frames) leaves nothing here: its error is in that run's output.",
            soft_wrap=True,
            highlight=False,
        )


@app.command()
def queue(
    store: str = typer.Argument(..., help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    video: str | None = typer.Option(None, help="only this video"),
) -> None:
    """The queued frame-objects (for refinement or human review) with reasons, scores and the
    review round of each review planner's pick."""
    from usam_video.store import PseudoLabelStore
    from usam_video.types import Status

    try:
        opened = PseudoLabelStore.open(store, mode="r")
        entries = opened.queue(video)
        # Entries of an incomplete video (killed, or failed mid-way on a broken mp4) are flagged:
        # its later frames were never labelled and the video is redone by the next run.
        incomplete = {
            vid: opened.summary(vid).failure or "interrupted"
            for vid in sorted({e.video_id for e in entries})
            if not opened.is_complete(vid)
        }
    except UsamVideoError as exc:
        fail(exc)
    if as_json:
        rows = [
            {
                "video_id": e.video_id,
                "frame": e.frame_index,
                "object_id": e.object_id,
                "route": e.status.label,
                "reason": e.reason,
                "plan": e.plan,
                "round": e.plan_round,  # null: a frame-object the planner did not pick
                "scores": {k: _finite(v) for k, v in e.scores.items()},
                "video_complete": e.video_id not in incomplete,
            }
            for e in entries
        ]
        print(json.dumps({"store": str(store), "queued": rows, "incomplete_videos": incomplete}, indent=1))
        return
    # Split by route as `export` counts: export (without --all-queued) takes the human ones.
    human = sum(e.status == Status.QUEUED_HUMAN for e in entries)
    title = f"{len(entries)} frame-objects: {human} for human review, {len(entries) - human} for refinement"
    table = Table(title=f"queue of {store} ({title})")
    for col in ("video", "frame", "object", "route", "reason", "review plan", "round", "sam_iou"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e.video_id + (" [red](incomplete)[/]" if e.video_id in incomplete else ""),
            str(e.frame_index),
            str(e.object_id),
            e.status.label,
            e.reason,
            escape(e.plan),
            "-" if e.plan_round is None else str(e.plan_round),
            f"{e.scores.get('sam_iou', float('nan')):.3f}",
        )
    console.print(table)
    for vid, why in incomplete.items():
        err_console.print(
            f"[bold yellow]warning:[/] video {vid} is incomplete ({escape(why)}): frames after the "
            "failure were never labelled; fix the input and rerun before exporting its queue."
        )


@app.command()
def verify(
    store: str = typer.Argument(..., help=STORE_HELP),
    video: str | None = typer.Option(None, help="only this video"),
) -> None:
    """Read every chunk of the store (or of one video) and check its checksum. Exit 0 intact,
    1 damaged (each damaged array and chunk named), 3 unverifiable (no damage found, but arrays
    written before checksums, which nothing can prove intact)."""
    from usam_video.store import PseudoLabelStore

    try:
        report = PseudoLabelStore.open(store, mode="r").verify(video)
    except UsamVideoError as exc:
        fail(exc)
    videos = sorted({c.video_id for c in report.checks if c.video_id})
    console.print(
        f"{store}: {len(videos)} video(s), {len(report.checks)} arrays, {report.chunks} chunks read",
        highlight=False,
    )
    for problem in report.problems:
        err_console.print(f"[bold red]damaged:[/] {escape(problem)}", highlight=False)
    if report.unverifiable:
        shown = ", ".join(report.unverifiable[:6]) + (" ..." if len(report.unverifiable) > 6 else "")
        console.print(
            f"unverifiable: {len(report.unverifiable)} array(s) were written before checksums ({shown}); "
            "they read without error but nothing proves their bytes. Relabel to checksum them.",
            highlight=False,
        )
    if not report.intact:
        err_console.print(f"[bold red]{store}: DAMAGED ({len(report.problems)} problem(s))[/]")
        raise typer.Exit(1)
    if report.unverifiable:
        raise typer.Exit(3)
    console.print(f"{store}: intact (every chunk's checksum matches)")


#: Runs of more videos print their counts by outcome and their failed and skipped videos only
#: (the flow's summary artifact has a row per video): a table of 50,000 rows is no use on a screen.
PRINTED_ROWS = 200


def print_results(results: list[Any]) -> int:
    """Print a run's rows (see :data:`PRINTED_ROWS`); returns how many videos failed."""
    shown = results
    if len(results) > PRINTED_ROWS:
        by_outcome = Counter(r.outcome for r in results)
        console.print(
            f"{len(results)} videos: "
            + ", ".join(f"{n} {outcome}" for outcome, n in sorted(by_outcome.items()))
        )
        shown = [r for r in results if r.outcome != "labelled"][:PRINTED_ROWS]
        if not shown:
            return 0
    table = Table(title="videos" if shown is results else f"videos not labelled (first {len(shown)})")
    for col in (
        "video",
        "outcome",
        "frames",
        "objects",
        "accepted",
        "queued refine",
        "queued human",
        "mean pred. IoU",
        "s",
    ):
        table.add_column(col)
    for r in shown:
        outcome = r.outcome
        if r.outcome == "failed":
            outcome = f"[red]failed[/]: {escape(str(r.error))}"
        elif r.outcome == "skipped":  # by whom: another live run's claim, or already complete
            outcome = f"skipped ({escape(r.error or 'already complete under this config')})"
        table.add_row(
            r.video_id,
            outcome,
            str(r.frames),
            str(r.objects),
            str(r.accepted),
            str(r.queued_refine),
            str(r.queued_human),
            "-" if math.isnan(r.mean_predicted_iou) else f"{r.mean_predicted_iou:.3f}",
            f"{r.seconds:.1f}",
        )
    console.print(table)
    return sum(r.outcome == "failed" for r in results)


@app.command()
def run(
    config: Path = typer.Argument(..., help="a run YAML (configs/runs/*.yaml)"),
    task_runner: str = typer.Option("thread", "--task-runner", help=TASK_RUNNER_HELP),
    workers: int | None = typer.Option(
        None, "--workers", help="threads (default: Prefect's), or local Dask worker processes (default 2)"
    ),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_ADDRESS_HELP),
    shard_size: int | None = typer.Option(
        None,
        "--shard-size",
        min=1,
        help="videos per task (default: 1 up to 1,000 videos, then at most 1,000 tasks a run)",
    ),
    report_videos: int | None = typer.Option(
        None,
        "--report-videos",
        min=0,
        help="review page artifacts for this many of the most uncertain videos (default 20; 0: none)",
    ),
) -> None:
    """Pseudo-label a dataset with the Prefect flow (embedded server unless PREFECT_API_URL is set).

    With ``--task-runner dask`` each video is a task on a Dask worker process, which builds the
    run's context (config, dataset, model) once from the config's path: on other hosts that path,
    the dataset and the store must be reachable under the same names (see README, "Labelling on
    a Dask cluster")."""
    _label_with_flow(
        config,
        report_jf=True,
        runner=(task_runner, workers, dask_address),
        shard_size=shard_size,
        report_videos=report_videos,
    )


def _label_with_flow(
    config: Path,
    *,
    report_jf: bool,
    runner: tuple[str, int | None, str | None] = ("thread", None, None),
    shard_size: int | None = None,
    report_videos: int | None = None,
) -> None:
    """Run the pseudo-label flow on a run YAML and print its table; exit 1 if a video failed.
    ``report_jf``: measure J&F in the flow's review artifacts. ``runner``: the task runner's
    name, workers (None: its default) and Dask address; ``thread`` with neither keeps the flow's
    own runner (what its deployments run with). ``shard_size``: videos per task and
    ``report_videos``: review pages (None: the flow's defaults)."""
    from usam_video.pipeline import open_run

    try:
        # Opened here to refuse a bad config before Prefect starts, and handed to the flow by
        # its token; its random-weight warnings are the flow's to log (once per run, where the
        # dashboard shows them too).
        context = open_run(config)
        run_cfg = context.run
        _ = context.store  # a regular file, a user's folder, a read-only place: refused now
    except UsamVideoError as exc:
        fail(exc)
    from flows import bind_embedded_server
    from flows.pseudo_label import pseudo_label_dataset
    from flows.runners import with_task_runner

    name, workers, address = runner
    flow: Any = pseudo_label_dataset
    if (name, workers, address) != ("thread", None, None):
        try:
            flow = with_task_runner(pseudo_label_dataset, name, 2 if workers is None else workers, address)
        except ValueError as exc:
            fail(exc)
    bind_embedded_server()  # before the first flow run: see flows/__init__.py
    if name == "dask" and address is None:
        from flows.embedded import share_embedded_server

        share_embedded_server()  # the local cluster's workers report to it, start none of their own
    elif name == "dask" and address is not None:
        from flows.embedded import remote_cluster_warning

        if warning := remote_cluster_warning(address):
            err_console.print(f"[bold yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    try:
        with one_line_task_failures():
            pages = {} if report_videos is None else {"report_videos": report_videos}
            results = flow(
                str(config.resolve()),
                report_jf=report_jf,
                context_token=context.token,
                shard_size=shard_size,
                **pages,
            )
    except UsamVideoError as exc:
        fail(exc)
    failed = print_results(results)
    console.print(f"store: {run_cfg.store}")
    if failed:
        for r in results:  # whole, on one line each (the table's cell wraps them)
            if r.outcome == "failed":
                line = f"{r.video_id}: {r.error}"
                err_console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
        err_console.print(f"[bold red]{failed} video(s) failed[/]")
        raise typer.Exit(1)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_output"), help="folder for the generated videos, configs and store"),
    videos: int = typer.Option(3, help="generated videos to pseudo-label (never trained on)"),
    frames: int = typer.Option(24, help="frames per video"),
) -> None:
    """Pseudo-label generated videos with the project's trained SAM 2 ("micro") and its USAM
    heads, send the frames the heads doubt to the larger "tiny" model, measure J&F against the
    ground truth, draw the masks coloured by predicted IoU, and release the confident
    pseudo-labels as a training dataset with a certified risk."""
    from usam_video.cli.refine_cmd import refine
    from usam_video.pipeline.demo import finish_demo, prepare_demo

    try:
        inputs = prepare_demo(out, videos, frames, repo_configs_dir())
    except UsamVideoError as exc:
        fail(exc)
    console.print(
        f"generated {len(inputs.videos)} videos in {inputs.data_root}; pseudo-labelling them "
        f"({inputs.run_config}) ..."
    )
    # Refinement follows at once, so the flow's review pages leave J&F out: it is measured once,
    # on the refined store, by finish_demo, which hands it to the report.
    _label_with_flow(inputs.run_config, report_jf=False)
    console.print("rerunning the frames routed to the larger SAM 2 ('tiny') ...")
    refine(inputs.store, None)
    inspect(inputs.store, as_json=False)
    try:
        result = finish_demo(inputs)
    except UsamVideoError as exc:
        fail(exc)
    _print_demo(inputs, result)


def _print_demo(inputs: DemoInputs, result: DemoResult) -> None:
    """The demo's findings, in the order they were made: J&F, the review plan, the images, the
    report and the release."""
    from usam_video.pipeline.demo import DEMO_MAX_RISK

    console.print(
        f"J&F against the ground truth: {result.jf.jf:.3f} "
        f"(copying the first mask to every frame: {result.jf.baseline:.3f})"
    )
    entries = result.plan
    plan = Table(
        title=f"review plan: {len(entries)} corrections asked of a human (usam-video queue {inputs.store})"
    )
    for col in ("video", "frame", "object", "iou_video", "why"):
        plan.add_column(col)
    for e in entries:
        iou = e.scores.get("iou_video", float("nan"))
        plan.add_row(e.video_id, str(e.frame_index), str(e.object_id), f"{iou:.2f}", escape(e.plan))
    console.print(plan)
    for drawn in result.plan_images:
        console.print(f"review plan (timeline, picks marked): {drawn}")
    for path in result.overlays:
        console.print(f"overlay (masks coloured by predicted IoU): {path}")
    console.print(f"review report (open in a browser): {result.report}")
    released = result.release
    cert = released.certificate
    verdict = (
        f"risk <= {DEMO_MAX_RISK} certified (upper bound {cert.upper_bound:.3f} on "
        f"{cert.released_audit} audited)"
        if cert is not None and cert.certified
        else "no threshold certified on so few videos: prompts and corrections only"
    )
    console.print(
        f"training dataset (SA-V layout, sam2's JSONRawDataset reads it): {released.out}; released "
        f"{released.counts['released']} of {released.counts['frame_objects']} frame-objects; {verdict}"
    )


def main() -> None:
    """Console-script entry point."""
    # sam2 prints a tqdm bar per propagation; the flow's progress artifact and our tables
    # replace it. TQDM_DISABLE=0 in the environment brings it back.
    os.environ.setdefault("TQDM_DISABLE", "1")
    app()


if __name__ == "__main__":
    sys.exit(main())
