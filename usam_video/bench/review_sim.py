"""simulate-review's wall time with and without the image-encoder feature cache (issue #35).

Generated videos (the ``val`` stream, DAVIS layout, ground truth on every frame) are labelled
once with the trained micro model, its trained heads and the trained policy (what
``make demo`` runs). Then :func:`~usam_video.pipeline.review_simulation.simulate_review` runs
at one budget, every strategy (every stored score under both planners, the oracle, random),
without the cache (``feature_cache_bytes=0``: every relabel encodes every frame) and with it
(the default budget), alternated over rounds (medians). Each run opens the store afresh, so
neither run reuses the other's relabels or features. Beside the times: the image encoder's
share of the uncached run (``forward_image`` timed in place), the cache's hits and misses, and
a check that both runs report the same picks and J&F, bit for bit.

    python -m usam_video.bench.review_sim                  # 24 videos x 48 frames, 5 %
    python -m usam_video.bench.review_sim --rounds 3       # the same budget in 3 rounds
    python -m usam_video.bench.review_sim --small          # 2 videos x 8 frames, seconds
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from usam_video.bench.common import (
    REPO_ROOT,
    alternate,
    base_parser,
    finish,
    format_table,
    machine_info,
    median,
    set_threads,
    stopwatch,
)

__all__ = ["labelled_run", "main"]


def labelled_run(root: Path, videos: int, frames: int) -> Any:
    """Generate ``videos`` x ``frames`` under ``root`` and label them with the trained micro
    model, heads and policy; returns the run's config."""
    from usam_video.config import DatasetConfig, HeadsConfig, RunConfig, load_model_config, load_policy_config
    from usam_video.datasets.synthetic import generated_specs, write_davis_dataset
    from usam_video.pipeline import label_dataset

    names = write_davis_dataset(root / "data", generated_specs("val", videos, num_frames=frames), split="val")
    run = RunConfig(
        name="bench-review-sim",
        dataset=DatasetConfig(name="generated-val", root=root / "data", videos=names),
        model=load_model_config(REPO_ROOT / "configs" / "models" / "micro.yaml"),
        heads=HeadsConfig(directory=REPO_ROOT / "usam_video" / "weights" / "heads-micro", token_dim=128),
        policy=load_policy_config(REPO_ROOT / "configs" / "policies" / "trained.yaml"),
        store=str(root / "store.zarr"),
    )
    label_dataset(run)
    return run


class _EncoderClock:
    """Times the model's ``forward_image`` (the image encoder) while installed."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.seconds = 0.0
        self.calls = 0

    def __enter__(self) -> _EncoderClock:
        encode = self.predictor.forward_image

        def timed(image: Any) -> Any:
            elapsed = stopwatch()
            out = encode(image)
            self.seconds += elapsed()
            self.calls += 1
            return out

        self.predictor.forward_image = timed  # an instance attribute: the class is untouched
        return self

    def __exit__(self, *exc: object) -> None:
        del self.predictor.forward_image


def _variant(
    run: Any, budget: float, rounds: int, cache_bytes: int, scores: Any, log: list[dict[str, Any]]
) -> Callable[[], float]:
    """A timed simulate-review (the store already labelled); appends its report and counts."""
    from usam_video.pipeline.context import load_context
    from usam_video.pipeline.review_simulation import simulate_review

    predictor = load_context(run).model.predictor  # the cached model simulate_review uses

    def once() -> float:
        with _EncoderClock(predictor) as clock:
            elapsed = stopwatch()
            report = simulate_review(
                run,
                budgets=(budget,),
                scores=scores,
                label=False,
                rounds=rounds,
                feature_cache_bytes=cache_bytes,
            )
            seconds = elapsed()
        log.append(
            {"seconds": seconds, "encoder_s": clock.seconds, "encoder_calls": clock.calls, "report": report}
        )
        return seconds

    return once


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and return its figures (see the module docstring)."""
    from usam_video.pipeline.review_simulation import DEFAULT_FEATURE_CACHE_BYTES

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=None, help="generated videos (default 24; small 2)")
    parser.add_argument("--frames", type=int, default=None, help="frames per video (default 48; small 8)")
    parser.add_argument(
        "--budget", type=float, default=None, help="budget fraction (default 0.05; small 0.2)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds the budget is spent in")
    parser.add_argument("--repeats", type=int, default=1, help="alternated runs of each variant")
    parser.add_argument("--cache-mb", type=int, default=DEFAULT_FEATURE_CACHE_BYTES >> 20)
    args = parser.parse_args(argv)
    threads = set_threads(args.threads)
    videos = args.videos or (2 if args.small else 24)
    frames = args.frames or (8 if args.small else 48)
    budget = args.budget or (0.2 if args.small else 0.05)
    scores = [] if args.small else None  # small: the oracle and random only
    logs: dict[str, list[dict[str, Any]]] = {"uncached": [], "cached": []}
    with tempfile.TemporaryDirectory(prefix="usam-bench-review-sim-") as tmp:
        elapsed = stopwatch()
        run = labelled_run(Path(tmp), videos, frames)
        label_s = elapsed()
        variants = {
            "uncached": _variant(run, budget, args.rounds, 0, scores, logs["uncached"]),
            "cached": _variant(run, budget, args.rounds, args.cache_mb << 20, scores, logs["cached"]),
        }
        times = alternate(variants, args.repeats)
    figures = _figures(args, videos, frames, budget, threads, label_s, times, logs)
    print(_report(figures))
    return finish(figures, args.json)


def _figures(
    args: Any, videos: int, frames: int, budget: float, threads: int, label_s: float,
    times: dict[str, list[float]], logs: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:  # fmt: skip
    uncached, cached = logs["uncached"][-1], logs["cached"][-1]
    a, b = uncached["report"], cached["report"]
    return {
        "benchmark": "review_sim",
        "machine": machine_info(),
        "threads": threads,
        "videos": videos,
        "frames": frames,
        "budget": budget,
        "rounds": args.rounds,
        "label_s": label_s,
        "strategies": len(a.strategies),
        "relabels": a.relabels,
        "uncached_s": times["uncached"],
        "cached_s": times["cached"],
        "median_uncached_s": median(times["uncached"]),
        "median_cached_s": median(times["cached"]),
        "ratio": median(times["uncached"]) / median(times["cached"]),
        "encoder_share_uncached": uncached["encoder_s"] / uncached["seconds"],
        "encoder_calls": {"uncached": uncached["encoder_calls"], "cached": cached["encoder_calls"]},
        "same_results": a.as_dict(with_picks=True) == b.as_dict(with_picks=True),
        "jf_before": a.jf_before,
        "default_gain": a.result(a.default_strategy, budget).gain
        if a.default_strategy in a.strategies
        else None,
    }


def _report(f: dict[str, Any]) -> str:
    rows = [
        ["uncached", f"{f['median_uncached_s']:.1f}", f["encoder_calls"]["uncached"],
         f"{100 * f['encoder_share_uncached']:.1f} %"],
        ["cached", f"{f['median_cached_s']:.1f}", f["encoder_calls"]["cached"], "-"],
    ]  # fmt: skip
    return "\n".join(
        [
            f"simulate-review: {f['videos']} videos x {f['frames']} frames, budget {f['budget']:.0%}, "
            f"{f['rounds']} round(s), {f['strategies']} strategies, {f['relabels']} relabels "
            f"(labelling took {f['label_s']:.1f} s; {f['threads']} torch thread(s))",
            format_table(["feature cache", "wall s (median)", "encoder calls", "encoder share"], rows),
            f"ratio uncached / cached: {f['ratio']:.2f}x; same picks and J&F: {f['same_results']}",
        ]
    )


if __name__ == "__main__":
    main()
