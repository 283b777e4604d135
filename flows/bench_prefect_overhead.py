"""Prefect flow and task overhead per video (benchmark 5).

The flow ``pseudo-label-dataset`` (:func:`flows.pseudo_label.pseudo_label_dataset`: one task
per video, artifacts) and the same work without Prefect
(:func:`usam_video.pipeline.label_dataset`) label the same short generated videos, alternated
run by run, each run into a fresh store (so nothing is skipped as already complete). Reported
for 10 and 100 videos: median wall time of each, the overhead per video
``(flow - plain) / N`` and that overhead as a fraction of a video's processing time
``(flow - plain) / plain``. The Prefect server (``prefect_test_harness``: an ephemeral
server on a temporary database) starts once, before timing; its start-up is reported apart.
A warm-up run of each variant on two videos comes first (model build, first flow run; not in
``--small``).

It lives in ``flows/`` because measuring the flow means importing prefect, which the library
never does.

    python -m flows.bench_prefect_overhead           # 10 and 100 videos of 8 frames, 2 rounds
    python -m flows.bench_prefect_overhead --small   # 1 and 2 videos of 2 frames, 1 round
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from usam_video.bench.common import (
    alternate,
    base_parser,
    finish,
    format_table,
    machine_info,
    median,
    run_config,
    set_threads,
    stopwatch,
    write_demo_videos,
)

__all__ = ["main", "measure_count", "prefect_server"]


@contextlib.contextmanager
def prefect_server(kind: str) -> Iterator[float]:
    """``harness``: start ``prefect_test_harness`` (yields its start-up seconds); ``current``:
    use the server this process is already configured for (a test's harness; yields 0)."""
    if kind == "current":
        yield 0.0
        return
    from prefect.testing.utilities import prefect_test_harness

    elapsed = stopwatch()
    with prefect_test_harness(server_startup_timeout=90):
        yield elapsed()


def _variants(root: Path, videos: list[str], workdir: Path) -> dict[str, Callable[[], float]]:
    import yaml

    from flows.pseudo_label import pseudo_label_dataset
    from usam_video.pipeline import label_dataset

    workdir = Path(tempfile.mkdtemp(dir=workdir))  # every run gets a fresh store below it
    counter = iter(range(1_000_000))

    def check(results: list[Any], variant: str) -> None:
        outcomes = [r.outcome for r in results]
        if outcomes != ["labelled"] * len(videos):
            raise RuntimeError(f"{variant}: expected {len(videos)} videos labelled, got {outcomes}")

    def flow() -> float:
        index = next(counter)
        run = run_config(root, videos, workdir / f"flow-{index}.zarr", name=f"bench-{index}")
        path = workdir / f"run-{index}.yaml"
        path.write_text(yaml.safe_dump(run.model_dump(mode="json")))
        elapsed = stopwatch()
        results = pseudo_label_dataset(str(path))
        seconds = elapsed()
        check(results, "flow")
        return seconds

    def plain() -> float:
        run = run_config(root, videos, workdir / f"plain-{next(counter)}.zarr")
        elapsed = stopwatch()
        results = label_dataset(run)
        seconds = elapsed()
        check(results, "label_dataset")
        return seconds

    return {"flow": flow, "plain": plain}


def measure_count(root: Path, videos: list[str], repeats: int, workdir: Path) -> dict[str, Any]:
    """Alternate the flow and ``label_dataset`` over ``videos``; wall times and overhead."""
    times = alternate(_variants(root, videos, workdir), repeats=repeats)
    n = len(videos)
    flow_s, plain_s = median(times["flow"]), median(times["plain"])
    paired = [(f - p) / p for f, p in zip(times["flow"], times["plain"], strict=True)]
    return {
        "videos": n,
        "seconds": times,
        "median_flow_s": flow_s,
        "median_plain_s": plain_s,
        "plain_s_per_video": plain_s / n,
        "overhead_s_per_video": (flow_s - plain_s) / n,
        "overhead_fraction": (flow_s - plain_s) / plain_s,
        "median_paired_overhead_fraction": median(paired),
    }


def _report(figures: dict[str, Any]) -> str:
    rows = [
        [r["videos"], f"{r['median_plain_s']:.2f}", f"{r['median_flow_s']:.2f}",
         f"{r['plain_s_per_video']:.3f}", f"{r['overhead_s_per_video']:+.3f}",
         f"{100 * r['overhead_fraction']:+.1f} %", f"{100 * r['median_paired_overhead_fraction']:+.1f} %"]
        for r in figures["results"]
    ]  # fmt: skip
    headers = ["videos", "plain s", "flow s", "plain s/video", "overhead s/video", "overhead/video time",
               "paired"]  # fmt: skip
    return "\n".join(
        [
            f"prefect overhead: {figures['frames']}-frame {figures['size']} videos (1-3 objects), small "
            f"config, 9 random heads; {figures['repeats']} alternating round(s), medians; server: "
            f"{figures['server']} (start-up {figures['server_startup_s']:.1f} s, not counted); "
            f"importing the flow module: {figures['import_s']:.1f} s",
            format_table(headers, rows),
        ]
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the Prefect overhead benchmark and return its figures (see the module docstring)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=None, help="videos per run")
    parser.add_argument("--frames", type=int, default=None, help="frames per video (default 8)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating rounds (default 2)")
    parser.add_argument("--server", choices=("harness", "current"), default="harness")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    counts = args.counts or ([1, 2] if args.small else [10, 100])
    frames = args.frames or (2 if args.small else 8)
    repeats = args.repeats or (1 if args.small else 2)
    height, width = (64, 64) if args.small else (96, 128)

    elapsed = stopwatch()
    import flows.pseudo_label  # noqa: F401  (prefect's import is a one-off cost: timed apart)

    import_s = elapsed()
    with tempfile.TemporaryDirectory(prefix="usam-bench-prefect-") as tmp:
        root = Path(tmp) / "data"
        names = write_demo_videos(root, max(counts), frames, height, width)
        with prefect_server(args.server) as startup_s:
            if not args.small:  # warm-up: model and heads built (cached), first flow run registered
                alternate(_variants(root, names[:2], Path(tmp)), repeats=1)
            results = [measure_count(root, names[:n], repeats, Path(tmp)) for n in counts]
    figures: dict[str, Any] = {
        "benchmark": "prefect_overhead",
        "machine": machine_info(),
        "frames": frames,
        "size": f"{width}x{height}",
        "repeats": repeats,
        "server": args.server,
        "server_startup_s": startup_s,
        "import_s": import_s,
        "results": results,
    }
    print(_report(figures))
    return finish(figures, args.json)


if __name__ == "__main__":
    main()
