"""USAM scoring time as a fraction of the SAM 2 frame time (benchmark 3).

For each model (the small config at 256 px; the real SAM 2.1 hiera-t architecture at 1024 px
with random weights) and each object count (1, 4, 16), a generated video of DAVIS 480p
geometry (854x480) is propagated with :class:`~usam_video.engine.PropagationSession`. Each
tracked frame is timed (the ``next()`` of the session: memory attention, decoder, memory
encoder and token capture for every object), then the public
:func:`usam_video.scoring.score_frame` is timed on that frame's record with all nine heads
(median of several calls). Frame and scoring timings thus alternate frame by frame. Where
``usam_video.scoring`` has a reusable ``Scorer`` (what the pipeline builds once per run), it is
timed the same way beside ``score_frame`` (which builds one per call).
Goal: scoring / frame <= 1 %. The prompt frame (no tracking) is not timed.

    python -m usam_video.bench.scoring            # small + hiera-t, 1/4/16 objects (minutes)
    python -m usam_video.bench.scoring --small    # small config, 1 and 4 objects, seconds
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from usam_video.bench.common import (
    base_parser,
    finish,
    format_table,
    machine_info,
    median,
    set_threads,
    small_model_config,
    stopwatch,
    write_synthetic_video,
)

__all__ = ["GOAL_FRACTION", "HIERA_T", "main", "measure_model"]

#: The issue's goal: scoring time / SAM 2 frame time.
GOAL_FRACTION = 0.01
#: The real SAM 2.1 tiny architecture (1024 px input), built with random weights.
HIERA_T = "configs/sam2.1/sam2.1_hiera_t.yaml"


def measure_model(
    model_config: Any,
    label: str,
    objects: Sequence[int],
    tracked_frames: int,
    score_calls: int,
    size: tuple[int, int],
    workdir: Path,
) -> list[dict[str, Any]]:
    """Time SAM 2 frames and ``score_frame`` for every object count; one dict per count."""
    import usam_video.scoring as scoring_api
    from usam_video.config import DatasetConfig
    from usam_video.datasets import open_dataset
    from usam_video.engine import PropagationSession, build_model
    from usam_video.heads import HEAD_NAMES, random_heads
    from usam_video.scoring import score_frame, score_names

    model = build_model(model_config)
    heads = random_heads(HEAD_NAMES, token_dim=model.token_dim, seed=0)
    # The pipeline may score through a reusable object instead (``Scorer``, built once per run);
    # timed too where the package has one, so the two paths can be compared.
    scorer_cls = getattr(scoring_api, "Scorer", None)
    reused = scorer_cls(heads) if scorer_cls is not None else None
    results = []
    for count in objects:
        name = f"o{count}"
        write_synthetic_video(workdir, name, tracked_frames + 1, size[0], size[1], count, seed=count)
        reader = open_dataset(DatasetConfig(name="bench", root=workdir, videos=[name]))
        session = PropagationSession(model, reader.frames(name))
        for prompt in reader.prompts(name):
            session.add_prompt(prompt)
        records = session.propagate()
        score_frame(next(records), heads)  # the prompt frame: untimed, warms the heads up
        frame_s: list[float] = []
        score_s: list[float] = []
        reused_s: list[float] = []
        for _ in range(tracked_frames):
            elapsed = stopwatch()
            prediction = next(records)
            frame_s.append(elapsed())
            calls = []
            for _ in range(score_calls):
                elapsed = stopwatch()
                scores = score_frame(prediction, heads)
                calls.append(elapsed())
            expected = (count, len(score_names(heads)))
            if scores.values.shape != expected:
                raise RuntimeError(f"score_frame: expected {expected} scores, got {scores.values.shape}")
            score_s.append(median(calls))
            if reused is not None:
                calls = []
                for _ in range(score_calls):
                    elapsed = stopwatch()
                    reused(prediction)
                    calls.append(elapsed())
                reused_s.append(median(calls))
        for _ in records:  # none left: running the generator out releases the model's lock and hooks
            pass
        ratios = [s / f for s, f in zip(score_s, frame_s, strict=True)]
        results.append(
            {
                "model": label,
                "objects": count,
                "tracked_frames": tracked_frames,
                "frame_s": frame_s,
                "score_s": score_s,
                "median_frame_s": median(frame_s),
                "median_score_s": median(score_s),
                "median_fraction": median(ratios),
                "reused_scorer_s": reused_s,
                "median_reused_scorer_s": median(reused_s),
                "median_reused_fraction": median([r / f for r, f in zip(reused_s, frame_s, strict=True)]),
            }
        )
    return results


def _report(figures: dict[str, Any]) -> str:
    def fraction(value: float) -> str:
        return "-" if math.isnan(value) else f"{100 * value:.3f} %"

    rows = [
        [r["model"], r["objects"], r["tracked_frames"], f"{r['median_frame_s']:.3f}",
         f"{r['median_score_s'] * 1e3:.2f}", fraction(r["median_fraction"]),
         "met" if r["median_fraction"] <= GOAL_FRACTION else "NOT met",
         f"{r['median_reused_scorer_s'] * 1e3:.2f}", fraction(r["median_reused_fraction"])]
        for r in figures["results"]
    ]  # fmt: skip
    headers = ["model", "objects", "frames", "SAM 2 s/frame", "score_frame ms", "score_frame/frame",
               f"goal <= {100 * GOAL_FRACTION:.0f} %", "Scorer reused ms", "Scorer/frame"]  # fmt: skip
    return "\n".join(
        [
            f"scoring: score_frame with {figures['heads']} heads, median of {figures['score_calls']} "
            f"calls per frame, frames {figures['size'][1]}x{figures['size'][0]} (WxH), medians over frames",
            format_table(headers, rows),
        ]
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the scoring benchmark and return its figures (see the module docstring)."""
    from usam_video.config import ModelConfig
    from usam_video.heads import HEAD_NAMES

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=None)
    parser.add_argument("--frames", type=int, default=None, help="tracked frames, small config")
    parser.add_argument("--frames-tiny", type=int, default=2, help="tracked frames, hiera-t")
    parser.add_argument("--no-tiny", action="store_true", help="skip hiera-t at 1024 px")
    parser.add_argument("--score-calls", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    objects = args.objects or ([1, 4] if args.small else [1, 4, 16])
    frames = args.frames or (2 if args.small else 10)
    score_calls = args.score_calls or (5 if args.small else 21)
    size = (96, 128) if args.small else (480, 854)
    results = []
    with tempfile.TemporaryDirectory(prefix="usam-bench-scoring-") as tmp:
        results += measure_model(
            small_model_config(), "small 256px", objects, frames, score_calls, size, Path(tmp) / "small"
        )
        if not (args.small or args.no_tiny):
            tiny = ModelConfig(
                name="sam2.1-hiera-t-random", sam2_config=HIERA_T, random_init=True, seed=0, device="cpu"
            )
            results += measure_model(
                tiny, "hiera-t 1024px", objects, args.frames_tiny, score_calls, size, Path(tmp) / "tiny"
            )
    figures: dict[str, Any] = {
        "benchmark": "scoring",
        "machine": machine_info(),
        "heads": len(HEAD_NAMES),
        "score_calls": score_calls,
        "size": size,
        "goal_fraction": GOAL_FRACTION,
        "results": results,
        "goal_met": all(r["median_fraction"] <= GOAL_FRACTION for r in results),
    }
    print(_report(figures))
    return finish(figures, args.json)


if __name__ == "__main__":
    main()
