"""Frames per second of every SAM 2.1 size on a CUDA GPU, bare vs pipeline (benchmark 6).

For each SAM 2.1 size (hiera tiny, small, base+, large) at 1024 px, random weights, bfloat16
autocast (the dtype of ``configs/models/sam2.1-*.yaml``), on generated 854x480 videos with 1
and 8 objects:

* ``bare``: stock ``init_state(jpeg_folder)`` + ``add_new_mask`` + ``propagate_in_video``
  under ``torch.autocast("cuda", torch.bfloat16)``, masks dropped;
* ``pipeline``: ``label_video`` (lazy frames, token capture, nine random heads, default
  policy, Zarr writes) into a fresh store;

alternated (A, B, B, A, ...), medians of frames/s, the ratio, and the peak GPU memory of each.
Then the scoring ratio (:func:`usam_video.scoring.score_frame` time / SAM 2 frame time) with
the same session-based method as :mod:`usam_video.bench.scoring`. Without CUDA it refuses
(:class:`CudaUnavailable`, exit code 2) before doing anything.

    python -m usam_video.bench.gpu               # 4 sizes x 1/8 objects, 60 frames, 3 rounds
    python -m usam_video.bench.gpu --small       # hiera-t, 8 frames, 1 round
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from usam_video.bench.common import (
    alternate,
    base_parser,
    finish,
    format_bytes,
    format_table,
    machine_info,
    median,
    run_config,
    stopwatch,
    write_synthetic_video,
)

__all__ = ["SAM21_SIZES", "CudaUnavailable", "main", "require_cuda"]

#: SAM 2.1 sizes and their configs inside the sam2 package.
SAM21_SIZES: dict[str, str] = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


class CudaUnavailable(RuntimeError):
    """The GPU benchmark was asked to run where torch sees no CUDA device."""


def require_cuda() -> str:
    """Return the CUDA device's name, or raise :class:`CudaUnavailable`."""
    import torch

    if not torch.cuda.is_available():
        raise CudaUnavailable(
            "gpu benchmark: expected a CUDA device, found none (torch.cuda.is_available() is False). "
            "It measures SAM 2.1 on a GPU and has nothing to measure on a CPU: run it on the lent "
            "GPU machine (python -m usam_video.bench.gpu). The CPU benchmarks are memory, overhead, "
            "prefect_overhead, scoring and storage."
        )
    return torch.cuda.get_device_name(0)


def _variants(
    context: Any, root: Path, video: str, workdir: Path
) -> tuple[dict[str, Callable[[], float]], int, dict[str, list[int]]]:
    """The two timed callables (each returns frames/s), the frame count, and the list each
    callable appends its peak GPU memory to."""
    import torch

    from usam_video.pipeline import label_video
    from usam_video.store import PseudoLabelStore

    predictor = context.model.predictor
    num_frames = len(context.reader.frames(video))
    prompts = context.reader.prompts(video)
    counter = iter(range(1_000_000))
    peaks: dict[str, list[int]] = {"bare": [], "pipeline": []}

    def bare() -> float:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        elapsed = stopwatch()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            state = predictor.init_state(str(root / "JPEGImages" / "480p" / video))
            for prompt in prompts:
                predictor.add_new_mask(
                    state, prompt.frame_index, prompt.object_id, torch.from_numpy(prompt.mask)
                )
            frames = sum(1 for _ in predictor.propagate_in_video(state))
        torch.cuda.synchronize()
        seconds = elapsed()
        peaks["bare"].append(torch.cuda.max_memory_allocated())
        del state
        return frames / seconds

    def pipeline() -> float:
        store = PseudoLabelStore.open(workdir / f"store-{video}-{next(counter)}.zarr")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        elapsed = stopwatch()
        result = label_video(context, video, store)
        torch.cuda.synchronize()
        seconds = elapsed()
        peaks["pipeline"].append(torch.cuda.max_memory_allocated())
        if result.outcome != "labelled":
            raise RuntimeError(f"pipeline: expected the video labelled, got {result}")
        return result.frames / seconds

    return {"bare": bare, "pipeline": pipeline}, num_frames, peaks


def _measure_size(
    size: str, objects: Sequence[int], root: Path, repeats: int, score_frames: int, workdir: Path
) -> list[dict[str, Any]]:
    """Bare vs pipeline frames/s, peak GPU memory and the scoring ratio of one SAM 2.1 size."""
    import torch

    from usam_video.bench.scoring import measure_model
    from usam_video.config import ModelConfig
    from usam_video.pipeline import load_context

    model_config = ModelConfig(
        name=f"sam2.1-hiera-{size}-random",
        sam2_config=SAM21_SIZES[size],
        random_init=True,
        seed=0,
        device="cuda",
        dtype="bfloat16",
    )
    videos = [f"o{count}" for count in objects]
    context = load_context(run_config(root, videos, workdir / "unused.zarr", model=model_config))
    rows = []
    for count, video in zip(objects, videos, strict=True):
        variants, num_frames, peaks = _variants(context, root, video, workdir)
        fps = alternate(variants, repeats=repeats, warmup=1)
        peaks = {name: values[1:] for name, values in peaks.items()}  # drop the warm-up's
        rows.append(
            {
                "size": size,
                "objects": count,
                "frames": num_frames,
                "fps": fps,
                "median_fps_bare": median(fps["bare"]),
                "median_fps_pipeline": median(fps["pipeline"]),
                "pipeline_over_bare_time": median(fps["bare"]) / median(fps["pipeline"]),
                "peak_gpu_bytes_bare": max(peaks["bare"]),
                "peak_gpu_bytes_pipeline": max(peaks["pipeline"]),
            }
        )
    scoring = measure_model(
        model_config, size, objects, score_frames, 21, (480, 854), workdir / f"scoring-{size}"
    )
    for row, score in zip(rows, scoring, strict=True):
        row["scoring_fraction"] = score["median_fraction"]
        row["scoring_ms"] = 1e3 * score["median_score_s"]
    del context
    torch.cuda.empty_cache()
    return rows


def _report(figures: dict[str, Any]) -> str:
    rows = [
        [r["size"], r["objects"], r["frames"], f"{r['median_fps_bare']:.1f}",
         f"{r['median_fps_pipeline']:.1f}", f"{r['pipeline_over_bare_time']:.3f}",
         format_bytes(r["peak_gpu_bytes_bare"]), format_bytes(r["peak_gpu_bytes_pipeline"]),
         f"{100 * r['scoring_fraction']:.3f} %"]
        for r in figures["results"]
    ]  # fmt: skip
    headers = ["size", "objects", "frames", "bare fps", "pipeline fps", "pipeline/bare time",
               "GPU peak bare", "GPU peak pipeline", "scoring/frame"]  # fmt: skip
    return "\n".join(
        [
            f"gpu: {figures['machine'].get('cuda')}, SAM 2.1 at 1024 px, random weights, bf16 autocast; "
            f"{figures['repeats']} alternating round(s) after 1 warm-up, medians",
            format_table(headers, rows),
        ]
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the GPU benchmark and return its figures; raises :class:`CudaUnavailable` without CUDA."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SAM21_SIZES), default=None)
    parser.add_argument("--objects", type=int, nargs="+", default=None)
    parser.add_argument("--frames", type=int, default=None, help="frames per video (default 60)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating rounds (default 3)")
    args = parser.parse_args(argv)
    require_cuda()
    sizes = args.sizes or (["tiny"] if args.small else list(SAM21_SIZES))
    objects = args.objects or [1, 8]
    frames = args.frames or (8 if args.small else 60)
    repeats = args.repeats or (1 if args.small else 3)
    results = []
    with tempfile.TemporaryDirectory(prefix="usam-bench-gpu-") as tmp:
        root = Path(tmp) / "data"
        for count in objects:
            write_synthetic_video(root, f"o{count}", frames, 480, 854, count, seed=count)
        for size in sizes:
            results += _measure_size(size, objects, root, repeats, min(frames - 1, 5), Path(tmp))
    figures: dict[str, Any] = {
        "benchmark": "gpu",
        "machine": machine_info(),
        "frames": frames,
        "repeats": repeats,
        "results": results,
    }
    print(_report(figures))
    return finish(figures, args.json)


if __name__ == "__main__":
    try:
        main()
    except CudaUnavailable as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
