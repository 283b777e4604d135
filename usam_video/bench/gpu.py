"""What users see on a CUDA GPU: bare SAM 2 vs the labelling pipeline, frames/s and syncs (benchmark 6).

One SAM 2.1 size (``--size``, default ``tiny``: the smallest model is where the pipeline's own
per-frame work weighs most) at 1024 px, bfloat16 autocast, TF32 on (``ModelConfig.tf32``),
random weights unless ``--checkpoint`` names the real SAM 2.1 file of that size. Random weights
give nearly empty masks, so the cost of writing masks is understated; the output says so.

Every case is a model variant (``eager``; ``compiled``: ``ModelConfig.compile_image_encoder``,
sam2's own torch.compile of the image encoder) x a source (``jpeg`` folder; ``mp4``, Motion-JPEG
written by :mod:`usam_video.datasets.mp4_writer`) x a generated video (moving shapes, 854x480
and 1920x1080, 1 and 8 objects, prompted by their frame-0 masks). Three arms run on the same
built model:

1. ``bare``: stock sam2 ``init_state`` on the JPEG folder or the mp4 (sam2 preloads every frame
   onto the GPU; an mp4 through its own decord loader), ``add_new_mask`` per object, then timed
   from the first ``propagate_in_video`` step to the last, masks dropped (propagate-only);
2. ``bare_copy``: the same, plus the host copy of every frame's masks that sam2's
   ``tools/vos_inference.py`` makes: ``(out_mask_logits > 0).cpu().numpy()``;
3. ``pipeline``: :func:`usam_video.pipeline.label_video` into a fresh Zarr store, timed whole
   (lazy decoding of the JPEG folder, or of the mp4 through the plain-video dataset format,
   token capture, nine random heads, the default policy, writes).

Each case first runs every arm once on a ``--warmup-frames`` prefix of its video (with
``compiled`` the first one compiles, max-autotune: minutes), then ``--repeats`` rounds alternated
(A, B, C, C, B, A, ...), medians. Reported per case: frames/s of each arm, pipeline/bare and
pipeline/bare_copy, peak GPU memory (``torch.cuda.max_memory_allocated``, reset at the start of
each arm) and CUDA synchronisations per frame; below the goals, each arm's host time per frame,
thread by thread (:mod:`usam_video.bench.threads`): SAM 2's thread's CPU and blocked time, and
the CPU of the pipeline's prefetch, finishing and writer threads.

Synchronisations are counted in one more, untimed, run of every arm with
``torch.cuda.set_sync_debug_mode("warn")``: torch then warns "called a synchronizing CUDA
operation" at every sync (stream/device synchronise, ``.item()``, device-to-host copies into
pageable memory, ``nonzero``, ...), and :class:`SyncCounter` records those warnings. The debug
mode is process-wide and torch turns each warning into a Python warning in the thread that made
the call; ``warnings.catch_warnings`` is process-wide too (Python <= 3.13), so syncs made by the
pipeline's background Python threads are counted as well. The bare arms are counted over the
propagation loop only, the pipeline over its whole call (its start-up syncs are spread over the
frames).

Goals (issue #17), printed per case as ``goal ... -> MET`` / ``NOT MET``: pipeline frames/s at
least 0.95x bare propagate-only frames/s; at most 2 syncs per frame more than bare
propagate-only, whatever the number of objects.

Without CUDA it refuses (:class:`CudaUnavailable`, exit code 2) before doing anything, except
with ``--cpu-smoke``: every arm's code path on the CPU (the small config, 96x64 videos, 3 frames,
1 round, eager only, both sources); figures from it measure nothing, syncs and GPU memory are
n/a and goals are NOT MEASURED. It is what CI runs.

    python -m usam_video.bench.gpu                     # eager+compiled x jpeg/mp4 x 480p/1080p x 1/8 objects
    python -m usam_video.bench.gpu --checkpoint ckpts/sam2.1_hiera_tiny.pt --size tiny
    python -m usam_video.bench.gpu --small             # eager, 480p, 8 frames, 1 round (the gpu test)
    python -m usam_video.bench.gpu --cpu-smoke         # every arm on the CPU, no figures of worth
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usam_video.bench.common import (
    alternate,
    base_parser,
    copy_video_prefix,
    finish,
    format_bytes,
    format_table,
    machine_info,
    median,
    run_config,
    set_threads,
    small_model_config,
    stopwatch,
    write_synthetic_video,
    write_video_as_mp4,
)
from usam_video.bench.threads import HOST_LEGEND, ThreadProfiler, host_table, median_per_frame

__all__ = [
    "ARMS",
    "GOAL_EXTRA_SYNCS",
    "GOAL_FPS_RATIO",
    "RESOLUTIONS",
    "SAM21_SIZES",
    "SYNC_WARNING",
    "CudaUnavailable",
    "SyncCounter",
    "main",
    "require_cuda",
]

#: SAM 2.1 sizes and their configs inside the sam2 package.
SAM21_SIZES: dict[str, str] = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
#: Generated video sizes, (height, width).
RESOLUTIONS: dict[str, tuple[int, int]] = {"480p": (480, 854), "1080p": (1080, 1920)}
#: The size of ``--cpu-smoke`` videos.
SMOKE_RESOLUTION: tuple[str, tuple[int, int]] = ("96x64", (64, 96))
#: The arms, in the order they are reported.
ARMS: tuple[str, ...] = ("bare", "bare_copy", "pipeline")
#: Goal: pipeline frames/s over bare propagate-only frames/s, at least.
GOAL_FPS_RATIO = 0.95
#: Goal: the pipeline's syncs per frame over bare propagate-only's, at most.
GOAL_EXTRA_SYNCS = 2.0
#: What torch warns at each synchronisation under ``set_sync_debug_mode("warn")``.
SYNC_WARNING = "called a synchronizing CUDA operation"


class CudaUnavailable(RuntimeError):
    """The GPU benchmark was asked to run where torch sees no CUDA device."""


def require_cuda() -> str:
    """Return the CUDA device's name, or raise :class:`CudaUnavailable`."""
    import torch

    if not torch.cuda.is_available():
        raise CudaUnavailable(
            "gpu benchmark: expected a CUDA device, found none (torch.cuda.is_available() is False). "
            "It measures SAM 2.1 on a GPU and has nothing to measure on a CPU: run it on the lent "
            "GPU machine (python -m usam_video.bench.gpu), or pass --cpu-smoke to exercise its code "
            "paths on the CPU (no figures of worth). The CPU benchmarks are memory, overhead, "
            "prefect_overhead, scoring and storage."
        )
    return torch.cuda.get_device_name(0)


# --------------------------------------------------------------------------- sync counting


class SyncCounter:
    """Counts CUDA synchronisations made, from any Python thread, while the context is open.

    With ``cuda`` it turns on ``torch.cuda.set_sync_debug_mode("warn")`` (process-wide) and
    counts the :data:`SYNC_WARNING` warnings torch raises; without, it only counts such
    warnings (the tests raise them by hand). Warnings are recorded through
    ``warnings.catch_warnings``, which swaps process-wide state on Python <= 3.13, so warnings of
    worker threads land in the same record; it is not re-entrant. Other warnings recorded
    meanwhile are re-issued on exit.
    """

    def __init__(self, cuda: bool = True):
        self.cuda = cuda
        self.count = 0
        self._catch: warnings.catch_warnings[Any] | None = None
        self._records: list[warnings.WarningMessage] = []

    def __enter__(self) -> SyncCounter:
        if self.cuda:
            import torch

            torch.cuda.synchronize()  # work queued before the window is not counted in it
        self._catch = warnings.catch_warnings(record=True)
        self._records = self._catch.__enter__()
        warnings.simplefilter("always")  # never folded into "once per location"
        if self.cuda:
            import torch

            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            import torch

            torch.cuda.set_sync_debug_mode(0)
        assert self._catch is not None
        self._catch.__exit__(*exc)
        others = [w for w in self._records if SYNC_WARNING not in str(w.message)]
        self.count = len(self._records) - len(others)
        for w in others:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self._records, self._catch = [], None


# --------------------------------------------------------------------------- cases and arms


@dataclass(frozen=True)
class Case:
    """One measured configuration."""

    variant: str  # "eager" or "compiled"
    source: str  # "jpeg" or "mp4"
    resolution: str
    objects: int

    @property
    def video(self) -> str:
        return f"{self.resolution}-o{self.objects}"

    @property
    def label(self) -> str:
        return f"{self.variant} {self.source} {self.resolution} {self.objects} obj"


@dataclass(frozen=True)
class ArmRun:
    """One run of one arm: frames, timed seconds, peak GPU bytes (None on the CPU), syncs, and
    the timed part's host time per frame by thread (:meth:`HostProfile.per_frame`)."""

    frames: int
    seconds: float
    peak_bytes: int | None = None
    syncs: int | None = None
    host: dict[str, float | None] | None = None


def _reset_peak(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(cuda: bool) -> int | None:
    if not cuda:
        return None
    import torch

    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def _counting(counter: SyncCounter | None) -> contextlib.AbstractContextManager[Any]:
    return counter if counter is not None else contextlib.nullcontext()


def _bare(
    context: Any, source_path: Path, video: str, copy_masks: bool, counter: SyncCounter | None = None
) -> ArmRun:
    """Arm 1 (``copy_masks`` False) or 2: stock sam2 on a preloaded video."""
    import torch

    model = context.model
    predictor = model.predictor
    cuda = model.device.type == "cuda"
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = (
        (lambda: torch.autocast("cuda", dtype=model.dtype))
        if cuda and model.dtype != torch.float32
        else contextlib.nullcontext
    )
    prompts = context.reader.prompts(video)
    _reset_peak(cuda)
    with autocast():
        state = predictor.init_state(str(source_path))  # every frame decoded and moved up front
        if source_path.suffix == ".mp4":
            # sam2's mp4 loader switches decord's bridge to torch for the whole process: put it
            # back, or every later decord reader in this process hands out torch tensors.
            import decord

            decord.bridge.reset_bridge()
        for prompt in prompts:
            predictor.add_new_mask(state, prompt.frame_index, prompt.object_id, torch.from_numpy(prompt.mask))
    if cuda:
        torch.cuda.synchronize()
    frames = 0
    elapsed = stopwatch()
    with ThreadProfiler() as profiler, autocast(), _counting(counter):
        for _frame_index, _object_ids, mask_logits in predictor.propagate_in_video(state):
            if copy_masks:
                (mask_logits > 0).cpu().numpy()  # as sam2's tools/vos_inference.py
            frames += 1
        if cuda:
            torch.cuda.synchronize()
        seconds = elapsed()
    del state
    host = None if profiler.profile is None else profiler.profile.per_frame(max(frames, 1))
    return ArmRun(frames, seconds, _peak(cuda), counter.count if counter is not None else None, host)


def _pipeline(context: Any, video: str, workdir: Path, counter: SyncCounter | None = None) -> ArmRun:
    """Arm 3: ``label_video`` into a fresh store, timed whole."""
    from usam_video.pipeline import label_video
    from usam_video.store import PseudoLabelStore

    cuda = context.model.device.type == "cuda"
    path = Path(tempfile.mkdtemp(prefix="store-", dir=workdir)) / "labels.zarr"
    store = PseudoLabelStore.open(path)
    _reset_peak(cuda)
    elapsed = stopwatch()
    with ThreadProfiler() as profiler:
        with _counting(counter):
            result = label_video(context, video, store)
        if cuda:
            import torch

            torch.cuda.synchronize()
        seconds = elapsed()  # not the wait for its threads' ends (the profiler's exit)
    peak = _peak(cuda)
    del store
    shutil.rmtree(path.parent, ignore_errors=True)
    if result.outcome != "labelled":
        raise RuntimeError(f"pipeline: expected video {video!r} labelled, got {result}")
    host = None if profiler.profile is None else profiler.profile.per_frame(max(result.frames, 1))
    return ArmRun(result.frames, seconds, peak, counter.count if counter is not None else None, host)


def _source_path(case: Case, video: str, davis_root: Path, plain_root: Path) -> Path:
    if case.source == "mp4":
        return plain_root / f"{video}.mp4"
    return davis_root / "JPEGImages" / "480p" / video


def _measure_case(
    case: Case, context: Any, davis_root: Path, plain_root: Path, repeats: int, workdir: Path
) -> dict[str, Any]:
    """Warm up, time the three arms alternated, count their syncs; one result row."""
    cuda = context.model.device.type == "cuda"

    def arms(video: str) -> dict[str, Callable[..., ArmRun]]:
        path = _source_path(case, video, davis_root, plain_root)
        return {
            "bare": lambda counter=None: _bare(context, path, video, False, counter),
            "bare_copy": lambda counter=None: _bare(context, path, video, True, counter),
            "pipeline": lambda counter=None: _pipeline(context, video, workdir, counter),
        }

    for arm in arms(f"{case.video}-warm").values():
        arm()
    timed = arms(case.video)
    runs: dict[str, list[ArmRun]] = {name: [] for name in ARMS}

    def fps_of(name: str) -> Callable[[], float]:
        def run() -> float:
            result = timed[name]()
            runs[name].append(result)
            return result.frames / result.seconds

        return run

    fps = alternate({name: fps_of(name) for name in ARMS}, repeats=repeats)
    syncs: dict[str, float | None] = {}
    for name in ARMS:
        if cuda:
            counted = timed[name](SyncCounter(cuda=True))
            assert counted.syncs is not None
            syncs[name] = counted.syncs / counted.frames
        else:
            syncs[name] = None
    medians = {name: median(values) for name, values in fps.items()}
    peaks = {name: (max(r.peak_bytes for r in runs[name]) if cuda else None) for name in ARMS}  # type: ignore[type-var]
    extra = None if syncs["pipeline"] is None or syncs["bare"] is None else syncs["pipeline"] - syncs["bare"]
    return {
        "case": case.label,
        "variant": case.variant,
        "source": case.source,
        "resolution": case.resolution,
        "objects": case.objects,
        "frames": runs["pipeline"][0].frames,
        "fps": fps,
        "median_fps": medians,
        "pipeline_over_bare": medians["pipeline"] / medians["bare"],
        "pipeline_over_bare_copy": medians["pipeline"] / medians["bare_copy"],
        "syncs_per_frame": syncs,
        "extra_syncs_per_frame": extra,
        "peak_gpu_bytes": peaks,
        # The timed runs' host time per frame, thread by thread: why a ratio is what it is.
        "host_per_frame": {name: median_per_frame([r.host for r in runs[name] if r.host]) for name in ARMS},
    }


def _goals(row: dict[str, Any], measured: bool) -> list[dict[str, Any]]:
    label = row["case"]
    ratio, extra = row["pipeline_over_bare"], row["extra_syncs_per_frame"]
    return [
        {
            "goal": f"pipeline fps >= {GOAL_FPS_RATIO}x bare propagate-only fps",
            "case": label,
            "value": f"{ratio:.3f}x",
            "met": (ratio >= GOAL_FPS_RATIO) if measured else None,
        },
        {
            "goal": f"pipeline syncs/frame <= bare propagate-only + {GOAL_EXTRA_SYNCS:g}",
            "case": label,
            "value": "n/a" if extra is None else f"{extra:+.2f}",
            "met": (extra <= GOAL_EXTRA_SYNCS) if measured and extra is not None else None,
        },
    ]


# --------------------------------------------------------------------------- data and models


def _write_videos(
    tmp: Path,
    resolutions: dict[str, tuple[int, int]],
    objects: Sequence[int],
    frames: int,
    warmup_frames: int,
    mp4: bool,
) -> tuple[Path, Path, list[str]]:
    """Generate every video (and its warm-up prefix) as JPEG folders, and as mp4s if asked."""
    davis_root, plain_root = tmp / "davis", tmp / "plain"
    plain_root.mkdir(parents=True, exist_ok=True)
    names = []
    for resolution, (height, width) in resolutions.items():
        for count in objects:
            name = f"{resolution}-o{count}"
            write_synthetic_video(davis_root, name, frames, height, width, count, seed=count)
            copy_video_prefix(davis_root, name, f"{name}-warm", min(warmup_frames, frames))
            names += [name, f"{name}-warm"]
    if mp4:
        for name in names:
            write_video_as_mp4(davis_root, name, plain_root)
    return davis_root, plain_root, names


def _model_config(args: Any, variant: str) -> Any:
    from usam_video.config import ModelConfig

    compiled = variant == "compiled"
    if args.cpu_smoke:
        return small_model_config("cpu").model_copy(update={"compile_image_encoder": compiled})
    weights: dict[str, Any] = (
        {"checkpoint": args.checkpoint} if args.checkpoint is not None else {"random_init": True, "seed": 0}
    )
    return ModelConfig(
        name=f"sam2.1-hiera-{args.size}"
        + ("" if args.checkpoint else "-random")
        + ("-compiled" if compiled else ""),
        sam2_config=SAM21_SIZES[args.size],
        device="cuda",
        dtype="bfloat16",
        tf32=True,
        compile_image_encoder=compiled,
        **weights,
    )


def _contexts(
    model_config: Any,
    sources: Sequence[str],
    davis_root: Path,
    plain_root: Path,
    videos: list[str],
    workdir: Path,
) -> Iterator[tuple[str, Any]]:
    """One label context per source; they share the built model (the pipeline caches it)."""
    from usam_video.config import DatasetConfig
    from usam_video.pipeline import load_context

    run = run_config(davis_root, videos, workdir / "unused.zarr", model=model_config)
    for source in sources:
        if source == "mp4":
            dataset = DatasetConfig(
                name="bench-mp4",
                format="video",
                root=plain_root,
                prompts=plain_root / "prompts.json",
                videos=videos,
            )
            yield source, load_context(run.model_copy(update={"dataset": dataset}))
        else:
            yield source, load_context(run)


# --------------------------------------------------------------------------- report


def _report(figures: dict[str, Any]) -> str:
    settings = figures["settings"]
    na = "n/a"

    def peak(value: int | None) -> str:
        return na if value is None else format_bytes(value)

    def syncs(value: float | None) -> str:
        return na if value is None else f"{value:.2f}"

    rows = []
    for r in figures["results"]:
        fps, s, p = r["median_fps"], r["syncs_per_frame"], r["peak_gpu_bytes"]
        rows.append(
            [r["variant"], r["source"], r["resolution"], r["objects"], r["frames"],
             f"{fps['bare']:.1f}", f"{fps['bare_copy']:.1f}", f"{fps['pipeline']:.1f}",
             f"{r['pipeline_over_bare']:.3f}", f"{r['pipeline_over_bare_copy']:.3f}",
             f"{syncs(s['bare'])}/{syncs(s['bare_copy'])}/{syncs(s['pipeline'])}",
             na if r["extra_syncs_per_frame"] is None else f"{r['extra_syncs_per_frame']:+.2f}",
             f"{peak(p['bare'])}/{peak(p['bare_copy'])}/{peak(p['pipeline'])}"]
        )  # fmt: skip
    headers = ["variant", "source", "video", "objects", "frames", "bare fps", "bare+copy fps",
               "pipeline fps", "pipe/bare", "pipe/bare+copy", "syncs/frame b/b+c/p",
               "extra syncs/frame", "GPU peak b/b+c/p"]  # fmt: skip
    lines = [
        f"gpu: {figures['machine'].get('cuda') or 'CPU (--cpu-smoke)'}; model {settings['model']}; "
        f"{settings['dtype'] + ' autocast' if settings['dtype'] != 'float32' else 'float32'}, "
        f"TF32 {'on' if settings['tf32'] else 'off'}; "
        f"{settings['repeats']} alternating round(s) after a {settings['warmup_frames']}-frame warm-up "
        "per case, medians",
    ]
    if settings["random_weights"]:
        lines.append(
            "weights: RANDOM (no --checkpoint): masks come out nearly empty, so the cost of copying "
            "and writing masks is understated"
        )
    if settings["cpu_smoke"]:
        lines.append("--cpu-smoke: code paths exercised on the CPU; these figures measure nothing")
    lines.append(format_table(headers, rows))
    for goal in figures["goals"]:
        verdict = {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[goal["met"]]
        lines.append(f"goal {goal['goal']} [{goal['case']}]: {goal['value']} -> {verdict}")
    host = [(r["case"], arm, r["host_per_frame"][arm]) for r in figures["results"] for arm in ARMS]
    lines += [HOST_LEGEND, host_table(host)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the GPU benchmark and return its figures; raises :class:`CudaUnavailable` without CUDA
    (unless ``--cpu-smoke``)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.set_defaults(threads=0)  # torch's default on the GPU machine: users run it that way
    parser.add_argument("--cpu-smoke", action="store_true", help="every arm's code path on the CPU (CI)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a real SAM 2.1 checkpoint of --size")
    parser.add_argument(
        "--size", choices=list(SAM21_SIZES), default="tiny", help="SAM 2.1 size (default tiny)"
    )
    parser.add_argument("--variants", nargs="+", choices=["eager", "compiled"], default=None)
    parser.add_argument("--sources", nargs="+", choices=["jpeg", "mp4"], default=None)
    parser.add_argument("--resolutions", nargs="+", choices=list(RESOLUTIONS), default=None)
    parser.add_argument("--objects", type=int, nargs="+", default=None)
    parser.add_argument("--frames", type=int, default=None, help="frames per video (default 60)")
    parser.add_argument("--repeats", type=int, default=None, help="alternating rounds (default 3)")
    parser.add_argument(
        "--warmup-frames", type=int, default=None, help="frames of each case's warm-up run (default 16)"
    )
    args = parser.parse_args(argv)
    if args.cpu_smoke and args.checkpoint is not None:
        parser.error("--cpu-smoke runs the small config with random weights; --checkpoint is for GPU runs")
    if not args.cpu_smoke:
        require_cuda()
    set_threads(args.threads)
    if args.cpu_smoke:
        preset = {"variants": ["eager"], "resolutions": dict([SMOKE_RESOLUTION]), "objects": [1, 2],
                  "frames": 3, "repeats": 1, "warmup": 2}  # fmt: skip
    elif args.small:
        preset = {"variants": ["eager"], "resolutions": {"480p": RESOLUTIONS["480p"]}, "objects": [1, 8],
                  "frames": 8, "repeats": 1, "warmup": 4}  # fmt: skip
    else:
        preset = {"variants": ["eager", "compiled"], "resolutions": RESOLUTIONS, "objects": [1, 8],
                  "frames": 60, "repeats": 3, "warmup": 16}  # fmt: skip
    variants = args.variants or preset["variants"]
    sources = args.sources or ["jpeg", "mp4"]
    resolutions = (
        {name: RESOLUTIONS[name] for name in args.resolutions} if args.resolutions else preset["resolutions"]
    )
    objects = args.objects or preset["objects"]
    frames = args.frames or preset["frames"]
    repeats = args.repeats or preset["repeats"]
    warmup = min(args.warmup_frames or preset["warmup"], frames)
    results: list[dict[str, Any]] = []
    model_name = dtype = ""
    with _tf32_flags_restored(), tempfile.TemporaryDirectory(prefix="usam-bench-gpu-") as tmp_name:
        tmp = Path(tmp_name)
        davis_root, plain_root, videos = _write_videos(
            tmp, resolutions, objects, frames, warmup, "mp4" in sources
        )
        for variant in variants:
            model_config = _model_config(args, variant)
            model_name, dtype = model_config.name, model_config.dtype
            for source, context in _contexts(model_config, sources, davis_root, plain_root, videos, tmp):
                for resolution in resolutions:
                    for count in objects:
                        case = Case(variant, source, resolution, count)
                        results.append(_measure_case(case, context, davis_root, plain_root, repeats, tmp))
            _release_gpu_memory()
    measured = not args.cpu_smoke
    figures: dict[str, Any] = {
        "benchmark": "gpu",
        "machine": machine_info(),
        "settings": {
            "model": model_name,
            "size": "small config" if args.cpu_smoke else args.size,
            "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
            "random_weights": args.checkpoint is None,
            "dtype": dtype,
            "tf32": not args.cpu_smoke,
            "frames": frames,
            "repeats": repeats,
            "warmup_frames": warmup,
            "cpu_smoke": args.cpu_smoke,
            "python_threads_seen_by_sync_counter": "all (catch_warnings is process-wide)",
        },
        "results": results,
        "goals": [goal for row in results for goal in _goals(row, measured)],
    }
    print(_report(figures))
    return finish(figures, args.json)


@contextlib.contextmanager
def _tf32_flags_restored() -> Iterator[None]:
    """The models turn TF32 on process-wide (``ModelConfig.tf32``); a caller of :func:`main`
    (the gpu test) gets the flags back as they were."""
    import torch

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _release_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


if __name__ == "__main__":
    try:
        main()
    except CudaUnavailable as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
