"""Peak memory against video length: the pipeline vs stock sam2 (benchmark 1).

Runs the small config on a generated video of 200 frames and on one of 2,000 frames (the first
200 frames of the long one are the short one, byte for byte) and prints the peak RSS of each
run and the ratio long / short; goal: pipeline ratio <= 1.1. Beside it, the same figures for
stock sam2: ``init_state(jpeg_folder)`` (which loads every frame as one float32 tensor),
``add_new_mask`` per object, then ``propagate_in_video`` iterated by a user who keeps nothing.

Every measurement runs in its own subprocess (``--worker``), so one run's allocations never
count in another's peak (``--small`` runs its four at once: peaks are per process). The
worker builds the model (and, for the pipeline, the nine random heads), records its RSS,
resets the peak (``/proc/self/clear_refs``), runs, and reads the peak (VmHWM). "Peak" below
is the peak during the run, after the model was loaded; "growth" is that peak minus the RSS
right after the model was loaded.

    python -m usam_video.bench.memory            # 200 vs 2,000 frames, ~10 min on 2 cores
    python -m usam_video.bench.memory --small    # 4 vs 12 frames at 64 px, seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from usam_video.bench.common import (
    base_parser,
    copy_video_prefix,
    finish,
    format_bytes,
    format_table,
    machine_info,
    median,
    read_rss,
    reset_peak_rss,
    run_config,
    set_threads,
    write_synthetic_video,
)

__all__ = ["GOAL_RATIO", "WorkerResult", "main", "run_worker", "spawn_worker"]

#: The issue's goal: peak RSS on the long video / peak RSS on the short video.
GOAL_RATIO = 1.1

WorkerResult = dict[str, Any]
_KINDS = ("pipeline", "stock")
_LONG = "long"


def _worker_pipeline(root: Path, video: str, store: Path) -> tuple[int, bool, float, int]:
    """The pipeline: ``label_video`` (lazy frames, pruning, token capture, 9 heads, Zarr).

    Returns the RSS after the model load, whether the peak was reset, seconds and frames.
    """
    from usam_video.pipeline import label_video, load_context
    from usam_video.store import PseudoLabelStore

    context = load_context(run_config(root, [video], store))
    gc.collect()
    loaded = read_rss().current
    reset = reset_peak_rss()
    started = time.perf_counter()
    result = label_video(context, video, PseudoLabelStore.open(store))
    seconds = time.perf_counter() - started
    if result.outcome != "labelled":
        raise RuntimeError(f"expected the video labelled, got {result}")
    return loaded, reset, seconds, result.frames


def _worker_stock(root: Path, video: str) -> tuple[int, bool, float, int]:
    """Stock sam2: ``init_state`` on the JPEG folder, ``add_new_mask``, ``propagate_in_video``.

    Returns what :func:`_worker_pipeline` returns.
    """
    import torch

    from usam_video.bench.common import small_model_config
    from usam_video.config import DatasetConfig
    from usam_video.datasets import open_dataset
    from usam_video.engine import build_model

    model = build_model(small_model_config())
    prompts = open_dataset(DatasetConfig(name="bench", root=root, videos=[video])).prompts(video)
    gc.collect()
    loaded = read_rss().current
    reset = reset_peak_rss()
    predictor = model.predictor
    started = time.perf_counter()
    state = predictor.init_state(str(root / "JPEGImages" / "480p" / video))
    for prompt in prompts:
        predictor.add_new_mask(state, prompt.frame_index, prompt.object_id, torch.from_numpy(prompt.mask))
    frames = 0
    for _ in predictor.propagate_in_video(state):  # a naive user: look at nothing, keep nothing
        frames += 1
    seconds = time.perf_counter() - started
    return loaded, reset, seconds, frames


def run_worker(kind: str, root: Path, video: str) -> WorkerResult:
    """Measure one run in this process (call it in a fresh process: see :func:`spawn_worker`)."""
    if kind not in _KINDS:
        raise ValueError(f"worker kind: expected one of {_KINDS}, got {kind!r}.")
    with tempfile.TemporaryDirectory(prefix="usam-bench-store-") as tmp:
        if kind == "pipeline":
            loaded, reset, seconds, frames = _worker_pipeline(root, video, Path(tmp) / "store.zarr")
        else:
            loaded, reset, seconds, frames = _worker_stock(root, video)
        peak = read_rss().peak
    return {
        "kind": kind,
        "video": video,
        "frames": frames,
        "peak_reset": reset,  # False: the peak also covers imports and the model build
        "rss_loaded": loaded,
        "peak_run": peak,
        "growth": peak - loaded,
        "seconds": seconds,
        "seconds_per_frame": seconds / max(frames, 1),
    }


def spawn_worker(
    kind: str, root: Path, video: str, threads: int = 1, timeout: float = 3600.0
) -> WorkerResult:
    """Run :func:`run_worker` in a new Python process and return its figures."""
    env = dict(os.environ, TQDM_DISABLE="1")
    command = [sys.executable, "-m", "usam_video.bench.memory", "--worker", kind, "--root", str(root),
               "--video", video, "--threads", str(threads)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"memory worker {kind} {video}: expected exit code 0, got {proc.returncode}.\n"
            + proc.stderr[-3000:]
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _summarise(short: list[WorkerResult], long_: list[WorkerResult]) -> dict[str, float]:
    """Medians of one kind's runs on the short and the long video, and the peak ratio."""

    def med(runs: list[WorkerResult], key: str) -> float:
        return median([r[key] for r in runs])

    return {
        "rss_loaded": med(short, "rss_loaded"),
        "peak_short": med(short, "peak_run"),
        "peak_long": med(long_, "peak_run"),
        "peak_ratio": med(long_, "peak_run") / med(short, "peak_run"),
        "growth_short": med(short, "growth"),
        "growth_long": med(long_, "growth"),
        "s_per_frame_short": med(short, "seconds_per_frame"),
        "s_per_frame_long": med(long_, "seconds_per_frame"),
    }


def _report(figures: dict[str, Any]) -> str:
    short, long_ = figures["frames_short"], figures["frames_long"]
    rows = []
    for kind in _KINDS:
        k = figures[kind]
        rows.append([
            kind,
            format_bytes(k["rss_loaded"]),
            format_bytes(k["peak_short"]),
            format_bytes(k["peak_long"]),
            f"{k['peak_ratio']:.3f}",
            format_bytes(k["growth_short"]),
            format_bytes(k["growth_long"]),
            f"{k['s_per_frame_short']:.3f} / {k['s_per_frame_long']:.3f}",
        ])  # fmt: skip
    headers = ["", "RSS after load", f"peak {short} fr", f"peak {long_} fr", "ratio",
               f"growth {short} fr", f"growth {long_} fr", "s/frame short / long"]  # fmt: skip
    pipe = figures["pipeline"]["peak_ratio"]
    verdict = "MET" if pipe <= GOAL_RATIO else f"NOT MET (by {pipe - GOAL_RATIO:.3f})"
    lines = [
        f"memory: small config, {figures['video']}, {figures['repeats']} run(s) per cell in fresh "
        f"subprocesses ({figures['parallel_workers']} at a time; median), peak = VmHWM during the run "
        "after the model load",
        format_table(headers, rows),
        f"goal: pipeline peak {long_} fr / peak {short} fr <= {GOAL_RATIO}: {pipe:.3f} -> {verdict}",
        f"stock sam2 ratio: {figures['stock']['peak_ratio']:.3f}",
    ]
    if not all(figures["peak_reset"]):
        lines.append("note: /proc/self/clear_refs refused; peaks include imports and the model build")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the memory benchmark and return its figures (see the module docstring)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs=2, default=None, metavar=("SHORT", "LONG"))
    parser.add_argument("--repeats", type=int, default=1, help="subprocess runs per cell (median)")
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--size", type=int, default=None, help="frame side in pixels (128, small 64)")
    parser.add_argument(
        "--parallel",
        type=int,
        default=None,
        help="workers at once (default 1; small: all). Peaks are per process, timings are not",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated video here")
    parser.add_argument("--worker", choices=_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        set_threads(args.threads)
        result = run_worker(args.worker, args.root, args.video)
        print(json.dumps(result))
        return result

    set_threads(args.threads)  # the workers get the same count; here only for machine_info()
    short, long_ = args.frames or ((4, 12) if args.small else (200, 2000))
    size = args.size or (64 if args.small else 128)
    if not 0 < short < long_:
        parser.error(f"--frames: expected 0 < SHORT < LONG, got {short} {long_}")
    with tempfile.TemporaryDirectory(prefix="usam-bench-memory-") as tmp:
        root = args.workdir or Path(tmp)
        started = time.perf_counter()
        write_synthetic_video(root, _LONG, long_, size, size, args.objects, seed=7)
        copy_video_prefix(root, _LONG, "short", short)
        generate_s = time.perf_counter() - started
        # Alternate pipeline and stock, short before long, so load on the machine spreads evenly.
        cells = [(kind, video) for _ in range(args.repeats) for video in ("short", _LONG) for kind in _KINDS]
        parallel = args.parallel or (len(cells) if args.small else 1)
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            done = list(pool.map(lambda c: spawn_worker(c[0], root, c[1], args.threads), cells))
        runs: dict[tuple[str, str], list[WorkerResult]] = {}
        for cell, result in zip(cells, done, strict=True):
            runs.setdefault(cell, []).append(result)
    figures: dict[str, Any] = {
        "benchmark": "memory",
        "machine": machine_info(),
        "video": f"{size}x{size} px, {args.objects} objects, synthetic",
        "frames_short": short,
        "frames_long": long_,
        "repeats": args.repeats,
        "parallel_workers": parallel,
        "generate_seconds": generate_s,
        "goal_ratio": GOAL_RATIO,
        "peak_reset": [r["peak_reset"] for rs in runs.values() for r in rs],
        "runs": {f"{k}/{v}": rs for (k, v), rs in runs.items()},
    }
    for kind in _KINDS:
        figures[kind] = _summarise(runs[(kind, "short")], runs[(kind, _LONG)])
    figures["goal_met"] = figures["pipeline"]["peak_ratio"] <= GOAL_RATIO
    print(_report(figures))
    return finish(figures, args.json)


if __name__ == "__main__":
    main()
