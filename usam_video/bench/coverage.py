"""Benchmark: how much a release can hand out at a fixed risk, on held-out generated videos.

Per seed: ``count`` generated test videos (stream ``test``, the given seed, which no training,
heads or validation set uses) labelled by the trained micro SAM 2 with its heads and
``configs/policies/trained.yaml``; the population is every tracked frame-object that is not a
prompt, with its true IoU (every frame of a generated video has ground truth). It prints:

1. **Coverage at 2/5/10 % risk with the oracle threshold** for every directed score and the
   oracle ordering (:mod:`usam_video.evaluation.coverage`), and each score's ratio to the oracle.
2. **The calibrated threshold**: ``audits`` random audits of each size. Ours: an audit drawn
   stratified by score (:func:`usam_video.release.draw_audit`), the threshold by fixed-sequence
   Learn-then-Test (:func:`usam_video.release.certify_threshold`). The baseline: plain
   Learn-then-Test on a uniform audit (binomial p-values, Bonferroni over 19 nested sets of the
   most confident 5 %, 10 %, ..., 95 %). Each threshold is applied to the frame-objects the
   audit did not hold: their coverage (mean, and as a share of the oracle threshold's coverage
   for the same score) and how often the realised risk stayed at or under the target.

``python -m usam_video.bench.coverage --seed 41 --seed 42`` (about 2 minutes per seed on 2 CPU
cores); ``--small`` runs 3 short videos of one seed in seconds (what the tests use).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.bench.common import base_parser, finish, format_table, set_threads, stopwatch

__all__ = ["Population", "calibrated", "label_population", "main", "plain_ltt_threshold"]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SCORE = "good_release"


class Population:
    """Every tracked, non-prompt frame-object of a labelled seed: ``iou`` float ``(N,)`` and
    ``scores`` ``{name: float (N,)}`` (stored values; directions from the score registry)."""

    def __init__(self, iou: np.ndarray, scores: dict[str, np.ndarray]):
        self.iou = iou
        self.scores = scores


def label_population(
    seed: int,
    count: int,
    frames: int,
    workdir: Path,
    score_names: Sequence[str] = (),
    purpose: str = "test",
    with_features: bool = False,
) -> Population:
    """Generate, label and measure one seed (see the module docstring); the release head beside
    micro's heads adds ``good_release``.

    Args:
        score_names: keep only these scores (default: every directed score).
        purpose: the generated stream (``test`` for figures; ``heads`` for fitting anything).
        with_features: keep the video features too (no direction: not ranked, but inputs).
    """
    from usam_video.config import DatasetConfig, HeadsConfig, RunConfig, load_model_config, load_policy_config
    from usam_video.datasets import open_dataset
    from usam_video.datasets.synthetic import generated_specs, write_davis_dataset
    from usam_video.pipeline import label_dataset
    from usam_video.pipeline.train_release_head import frame_object_rows
    from usam_video.release import RELEASE_HEAD_FILE, RELEASE_SCORE, load_release_head
    from usam_video.score_registry import direction_of
    from usam_video.store import PseudoLabelStore

    root = workdir / f"{purpose}-s{seed}"
    names = write_davis_dataset(
        root, generated_specs(purpose, count, num_frames=frames, seed=seed), split=purpose
    )
    dataset = DatasetConfig(name=f"{purpose}-s{seed}", root=root, videos=names)
    store_path = workdir / f"{purpose}-s{seed}.zarr"
    heads_dir = REPO / "usam_video" / "weights" / "heads-micro"
    run = RunConfig(
        name=f"coverage-s{seed}",
        dataset=dataset,
        model=load_model_config(REPO / "configs" / "models" / "micro.yaml"),
        heads=HeadsConfig(directory=heads_dir, token_dim=128),
        policy=load_policy_config(REPO / "configs" / "policies" / "trained.yaml"),
        store=str(store_path),
    )
    label_dataset(run)
    rows = frame_object_rows(PseudoLabelStore.open(store_path, "r"), open_dataset(dataset))
    kinds = ("confidence", "uncertainty", "feature") if with_features else ("confidence", "uncertainty")
    scores = {
        n: v for n, v in rows.columns.items()
        if (not score_names or n in score_names) and direction_of(n) in kinds
    }  # fmt: skip
    if (heads_dir / RELEASE_HEAD_FILE).is_file() and (not score_names or RELEASE_SCORE in score_names):
        scores[RELEASE_SCORE] = load_release_head(heads_dir / RELEASE_HEAD_FILE).predict(rows.columns)
    return Population(rows.iou, scores)


def confidence_of(population: Population, score: str) -> np.ndarray:
    """The score as a confidence (an uncertainty negated); NaN stays NaN."""
    from usam_video.score_registry import direction_of

    values = population.scores[score]
    return values if direction_of(score) == "confidence" else -values


def plain_ltt_threshold(
    conf: np.ndarray, bad: np.ndarray, pool_conf: np.ndarray, risk: float, delta: float
) -> float:
    """Plain Learn-then-Test: 19 nested sets (the most confident 5 %, ..., 95 % of the pool by
    its scores), exact binomial p-values, Bonferroni at ``delta / 19``; the loosest passing
    set's threshold, ``inf`` when none passes."""
    from usam_video.release import binomial_cdf

    cuts = np.quantile(pool_conf[np.isfinite(pool_conf)], 1 - np.arange(1, 20) / 20)
    best = math.inf
    for cut in cuts:
        inside = conf >= cut
        n, k = int(inside.sum()), int(bad[inside].sum())
        if n and binomial_cdf(k, n, risk) <= delta / len(cuts):
            best = min(best, float(cut))
    return best


def calibrated(
    population: Population,
    score: str,
    risk: float,
    size: int,
    audits: int,
    delta: float,
    seed: int,
    starts: int = 1,
) -> dict[str, dict[str, float]]:
    """Coverage on the rest and risk held, over ``audits`` audits of ``size``, for ours and the
    plain baseline (see the module docstring)."""
    from usam_video.release import AuditSet, certify_threshold, draw_audit

    conf, bad = confidence_of(population, score), population.iou < 0.5
    n = conf.size
    pool = AuditSet(
        np.array(["v"] * n, dtype=object), np.arange(n), np.zeros(n, np.int64), population.iou, conf, "gt"
    )
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list[float]]] = {
        "ours": {"cov": [], "held": []},
        "plain": {"cov": [], "held": []},
    }
    for i in range(audits):
        for method in ("ours", "plain"):
            if method == "ours":
                picked = draw_audit(pool, size, seed=seed * 1000 + i)
                threshold = certify_threshold(conf[picked], bad[picked], risk, delta, starts).threshold
            else:
                picked = rng.choice(n, size=size, replace=False)
                threshold = plain_ltt_threshold(conf[picked], bad[picked], conf, risk, delta)
            rest = np.setdiff1d(np.arange(n), picked)
            released = rest[conf[rest] >= threshold]
            out[method]["cov"].append(released.size / rest.size)
            out[method]["held"].append(float(not released.size or bad[released].mean() <= risk))
    return {
        m: {"coverage": float(np.mean(v["cov"])), "risk_held": float(np.mean(v["held"]))}
        for m, v in out.items()
    }


def _print_calibrated(
    population: Population, report: Any, score: str, args: Any, seed: int
) -> dict[str, Any]:
    """The calibrated-threshold table of one score (see the module docstring); its figures."""
    from usam_video.evaluation.coverage import RISKS

    figures: dict[str, Any] = {}
    rows = []
    target_cov = dict(zip(RISKS, report.row(score).coverage, strict=True))
    for risk in (0.05, 0.10):
        for size in args.sizes:
            if size >= report.items:
                continue
            result = calibrated(population, score, risk, size, args.audits, args.delta, seed, args.starts)
            figures[f"{risk:g}/{size}"] = result
            base = target_cov[risk]
            row: list[Any] = [f"{risk:.0%}", size]
            for method in ("ours", "plain"):
                cov = result[method]["coverage"]
                row += [
                    f"{cov:.3f}",
                    f"{cov / base:.2f}x" if base else "-",
                    f"{result[method]['risk_held']:.0%}",
                ]
            rows.append(row)
    print(
        f"\ncalibrated threshold of {score} (delta {args.delta}, {args.starts} start(s); "
        f"{args.audits} audits each; x = of the oracle threshold's coverage for the same score)"
    )
    headers = ["risk", "audit", "ours cov", "ours x", "ours held", "plain cov", "plain x", "plain held"]
    print(format_table(headers, rows))
    return figures


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from usam_video.evaluation.coverage import RISKS, coverage_report
    from usam_video.score_registry import direction_of

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--seed", type=int, action="append", help="held-out seed (repeatable; default 41 and 42)"
    )
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--audits", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 500, 1000])
    parser.add_argument(
        "--score",
        action="append",
        help="score of the calibrated figures (repeatable; default good_release, iou_video)",
    )
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument(
        "--starts", type=int, default=1, help="fixed-sequence starting points (certify_threshold)"
    )
    args = parser.parse_args(argv)
    if args.small:
        args.seed, args.count, args.frames, args.audits, args.sizes = [41], 3, 12, 3, [20]
    seeds = args.seed or [41, 42]
    threads = set_threads(args.threads)
    figures: dict[str, Any] = {"threads": threads, "count": args.count, "frames": args.frames, "seeds": {}}
    workdir = Path(tempfile.mkdtemp(prefix="usam-bench-coverage-"))
    try:
        for seed in seeds:
            elapsed = stopwatch()
            population = label_population(seed, args.count, args.frames, workdir)
            report = coverage_report(
                population.iou, population.scores, {n: direction_of(n) for n in population.scores}
            )
            oracle = report.row("oracle")
            rows = []
            for r in report.rows:
                ratios = [
                    f"{c / o:.2f}x" if o else "-" for c, o in zip(r.coverage, oracle.coverage, strict=True)
                ]
                rows.append([r.score, *(f"{c:.3f}" for c in r.coverage), *ratios, f"{r.top_half_iou:.3f}"])
            print(
                f"\nseed {seed}: {report.items} frame-objects, {report.bad_share:.1%} bad (IoU < 0.5); "
                f"labelled in {elapsed():.0f} s"
            )
            headers = [
                "score",
                *(f"cov@{r:.0%}" for r in RISKS),
                *(f"/oracle@{r:.0%}" for r in RISKS),
                "top-half IoU",
            ]
            print(format_table(headers, rows))
            seed_fig: dict[str, Any] = {"coverage": report.as_dict(), "calibrated": {}}
            for score in [s for s in (args.score or [DEFAULT_SCORE, "iou_video"]) if s in population.scores]:
                seed_fig["calibrated"][score] = _print_calibrated(population, report, score, args, seed)

            figures["seeds"][str(seed)] = seed_fig
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return finish(figures, args.json)


if __name__ == "__main__":
    main()
