"""Helpers every benchmark shares: machine facts, RSS readings, alternating timing, configs.

Timings on a shared 2-core machine are noisy, so benchmarks alternate their variants
(A, B, A, B, ...) and report medians; :func:`alternate` does the alternating.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# sam2 draws tqdm progress bars while loading and propagating: they would be timed and printed.
# tqdm reads this when it is imported, and every benchmark imports this module first.
os.environ.setdefault("TQDM_DISABLE", "1")

__all__ = [
    "REPO_ROOT",
    "SMALL_MODEL_CONFIG",
    "DEFAULT_POLICY",
    "DEFAULT_THREADS",
    "RssReading",
    "alternate",
    "base_parser",
    "copy_video_prefix",
    "finish",
    "format_bytes",
    "format_table",
    "machine_info",
    "median",
    "read_rss",
    "reset_peak_rss",
    "run_config",
    "set_threads",
    "shared_data_root",
    "small_model_config",
    "stopwatch",
    "write_synthetic_video",
    "write_video_as_mp4",
]

#: The repository root (benchmarks read ``configs/`` from it; the package is installed editable).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The "small config": the small SAM 2.1 architecture at 256 px with random weights.
SMALL_MODEL_CONFIG = REPO_ROOT / "configs" / "models" / "small-random.yaml"
#: The policy every benchmark run applies (the shipped default).
DEFAULT_POLICY = REPO_ROOT / "configs" / "policies" / "default.yaml"
#: torch intra-op threads on the CPU. One, because on a shared 2-core machine two OpenMP
#: threads spin-wait for each other whenever another process holds a core: small operations
#: then cost a scheduler slice each (measured under load 6: the nine heads on 4 rows took a
#: median 552 ms with 2 threads, 15 ms with 1; both ~3 ms when the machine is idle). That
#: inflates many-small-op work (scoring, hooks) far more than big convolutions, so ratios
#: measured with 2 threads on a busy machine would be wrong, not just noisy.
DEFAULT_THREADS = 1


def shared_data_root() -> Path:
    """``$USAM_SHARED_DATA``, else ``<repo>/../shared/data`` (the real DAVIS samples live there)."""
    return Path(os.environ.get("USAM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


# --------------------------------------------------------------------------- machine and memory


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, torch threads, load, date."""
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


@dataclass(frozen=True)
class RssReading:
    """Resident set size of this process, in bytes: ``current`` (VmRSS) and ``peak`` (VmHWM)."""

    current: int
    peak: int


def read_rss() -> RssReading:
    """Read VmRSS and VmHWM from ``/proc/self/status``; ``resource.getrusage`` where that is absent.

    ``getrusage`` has no current RSS, so ``current`` then equals the peak.
    """
    try:
        fields = {}
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) * 1024  # kB
        return RssReading(current=fields["VmRSS"], peak=fields["VmHWM"])
    except (OSError, KeyError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
        return RssReading(current=peak, peak=peak)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write ``5`` to ``/proc/self/clear_refs``).

    Returns False where the kernel refuses; the peak then includes everything before.
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- timing


def median(values: Sequence[float]) -> float:
    """The median (NaN for no values)."""
    return statistics.median(values) if values else float("nan")


def alternate(
    variants: Mapping[str, Callable[[], float]], repeats: int, warmup: int = 0
) -> dict[str, list[float]]:
    """Run every variant ``repeats`` times in turn (A, B, A, B, ...) and collect what each returns.

    Each callable returns its own measurement (seconds, seconds per frame, ...), so it can
    leave set-up and tear-down out. ``warmup`` rounds run first and are discarded. The order
    of variants flips every round (A, B, B, A, ...) so neither always runs after the other.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(float(variants[name]()))
    return results


# --------------------------------------------------------------------------- data and configs


def write_synthetic_video(
    root: Path,
    name: str,
    num_frames: int,
    height: int = 128,
    width: int = 128,
    num_objects: int = 2,
    seed: int = 0,
    annotate_all_frames: bool = False,
) -> Path:
    """Render one moving-shapes video into ``root`` (DAVIS layout); returns its JPEG folder.

    Only frame 0 is annotated unless asked: the benchmarks need the prompt, not ground truth.
    """
    from usam_video.datasets.synthetic import SyntheticVideoSpec, write_davis_dataset

    spec = SyntheticVideoSpec(
        name=name, num_frames=num_frames, height=height, width=width, num_objects=num_objects, seed=seed
    )
    write_davis_dataset(root, [spec], annotate_all_frames=annotate_all_frames)
    return root / "JPEGImages" / "480p" / name


def write_video_as_mp4(davis_root: Path, name: str, out_root: Path, fps: float = 24.0) -> Path:
    """Copy a DAVIS-layout video (e.g. from :func:`write_synthetic_video`) to the plain-video
    format (``format: video``): ``<out_root>/<name>.mp4`` (Motion-JPEG, quality 90) and its
    frame-0 masks as prompts in ``<out_root>/prompts.json`` (one binary PNG per object under
    ``<out_root>/masks/``; entries of other videos already in the file are kept).

    Returns the prompt file.
    """
    import numpy as np
    from PIL import Image

    from usam_video.datasets.mp4_writer import write_mjpeg_mp4

    davis_root, out_root = Path(davis_root), Path(out_root)
    frames = sorted((davis_root / "JPEGImages" / "480p" / name).glob("*.jpg"))
    write_mjpeg_mp4(
        out_root / f"{name}.mp4", (np.asarray(Image.open(p).convert("RGB")) for p in frames), fps, quality=90
    )
    labels = np.asarray(Image.open(davis_root / "Annotations" / "480p" / name / "00000.png"))
    objects = []
    for object_id in sorted(int(v) for v in np.unique(labels) if v != 0):
        mask = out_root / "masks" / f"{name}_{object_id}.png"
        mask.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((labels == object_id) * 255).astype(np.uint8)).save(mask)
        objects.append({"id": object_id, "frame": 0, "mask": str(mask.relative_to(out_root))})
    prompt_file = out_root / "prompts.json"
    table = json.loads(prompt_file.read_text()) if prompt_file.is_file() else {"videos": {}}
    table["videos"][name] = {"objects": objects}
    prompt_file.write_text(json.dumps(table, indent=1))
    return prompt_file


def write_demo_videos(root: Path, num_videos: int, num_frames: int, height: int, width: int) -> list[str]:
    """Write ``synth-000`` ... (1-3 objects, every frame annotated) under ``root``; returns their
    names (:func:`usam_video.datasets.synthetic.make_demo_dataset`, for the benchmark flows)."""
    from usam_video.datasets.synthetic import make_demo_dataset

    return make_demo_dataset(root, num_videos=num_videos, num_frames=num_frames, height=height, width=width)


def copy_video_prefix(root: Path, source: str, target: str, num_frames: int) -> Path:
    """Copy the first ``num_frames`` frames (and the frame-0 mask) of a DAVIS-layout video.

    The shorter video then holds exactly the same pixels as the start of the longer one.
    """
    for kind, suffix in (("JPEGImages", "jpg"), ("Annotations", "png")):
        src = root / kind / "480p" / source
        dst = root / kind / "480p" / target
        dst.mkdir(parents=True, exist_ok=True)
        count = num_frames if kind == "JPEGImages" else 1
        for index in range(count):
            shutil.copyfile(src / f"{index:05d}.{suffix}", dst / f"{index:05d}.{suffix}")
    return root / "JPEGImages" / "480p" / target


def small_model_config(device: str = "cpu") -> Any:
    """The small config (``configs/models/small-random.yaml``) on ``device``."""
    from usam_video.config import load_model_config

    return load_model_config(SMALL_MODEL_CONFIG).model_copy(update={"device": device})


def run_config(
    dataset_root: Path,
    videos: Sequence[str],
    store: Path,
    model: Any | None = None,
    name: str = "bench",
) -> Any:
    """A :class:`~usam_video.config.RunConfig`: the small model (or ``model``), all nine heads
    with random weights, and the default policy."""
    from usam_video.config import DatasetConfig, HeadsConfig, RunConfig, load_policy_config
    from usam_video.heads import HEAD_NAMES

    return RunConfig(
        name=name,
        dataset=DatasetConfig(name="bench", root=dataset_root, videos=list(videos)),
        model=model if model is not None else small_model_config(),
        heads=HeadsConfig(random_init=True, names=list(HEAD_NAMES)),
        policy=load_policy_config(DEFAULT_POLICY),
        store=str(store),
    )


# --------------------------------------------------------------------------- output


def format_bytes(value: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes (``--small``, ``--json``,
    ``--threads``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--small", action="store_true", help="a seconds-long run (what the tests use)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch intra-op threads (default {DEFAULT_THREADS}; 0 keeps torch's default)",
    )
    return parser


def set_threads(threads: int) -> int:
    """Set torch's intra-op thread count (``0``: leave torch's default); return the count in use."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def finish(figures: dict[str, Any], json_path: Path | None) -> dict[str, Any]:
    """Write ``figures`` to ``json_path`` if given; return them."""
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=2, default=str))
    return figures


def stopwatch() -> Callable[[], float]:
    """Start a timer; calling the result returns the seconds since."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start
