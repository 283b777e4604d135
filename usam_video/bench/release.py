"""Benchmark: frames per second of a release, per format, beside a plain palette-PNG write.

The store: every frame of the shared DAVIS sample (``$USAM_SHARED_DATA/davis``, 854x480, 172
frames in 4 videos) with its ground-truth masks as accepted pseudo-labels (a frame without
ground truth repeats the last annotated one), written through the store's own writer with the
sample as the run's dataset, so a release copies the sample's JPEGs. No model runs: this times
the release alone. Each format is released in full (images, annotations, the table, the
manifest with the sha256 of every file) into a fresh folder, alternated over rounds (medians).
Beside it, in the same process and rounds, the palette-PNG write that ``bench.storage`` times
(:func:`usam_video.palette.write_palette_png` of the same frames' index maps, nothing else).
Goal (issue #31): the davis format at most 2x slower per frame than that write.

    python -m usam_video.bench.release             # 3 rounds, 2 writer threads
    python -m usam_video.bench.release --small     # one round of the two shortest videos
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.bench.common import (
    alternate,
    base_parser,
    finish,
    format_table,
    machine_info,
    median,
    shared_data_root,
    small_model_config,
    stopwatch,
)

__all__ = ["main", "write_sample_store"]

GOAL_DAVIS_VS_PNG = 2.0


def write_sample_store(
    davis_root: Path, store_path: Path, videos: Sequence[str] | None = None
) -> dict[str, int]:
    """The shared DAVIS sample as a store of accepted pseudo-labels (see the module docstring);
    returns frames per video."""
    from usam_video.config import DatasetConfig, RunConfig
    from usam_video.datasets import open_dataset
    from usam_video.palette import VOID_INDEX
    from usam_video.store import PseudoLabelStore
    from usam_video.types import Status

    dataset = DatasetConfig(name="davis-sample", root=davis_root, videos=list(videos) if videos else None)
    # The run that "labelled" it: what a release reads to find the frames (no model is loaded).
    run = RunConfig(name="bench-release", dataset=dataset, model=small_model_config(), store=str(store_path))
    reader = open_dataset(dataset)
    store = PseudoLabelStore.open(store_path)
    frames: dict[str, int] = {}
    for video_id in reader.list_videos():
        ref = reader.video(video_id)
        first = reader.index_map(video_id, 0)
        ids = tuple(int(v) for v in np.unique(first) if v not in (0, VOID_INDEX))
        provenance = {"run_config": run.model_dump(mode="json"), "model_name": "none (ground truth)"}
        writer = store.begin_video(ref, ids, ("iou_video",), (), provenance, "bench-release")
        labels = first
        for t in range(ref.num_frames):
            found = reader.index_map(video_id, t)
            labels = found if found is not None else labels
            masks = np.stack([labels == i for i in ids])
            o = len(ids)
            writer.write_frame(
                t,
                masks,
                np.full((o, 1), 0.9, np.float32),
                np.full(o, Status.ACCEPTED, np.uint8),
                np.zeros(o, np.uint8),
            )
        writer.finish()
        frames[video_id] = ref.num_frames
    return frames


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from usam_video.palette import write_palette_png
    from usam_video.pipeline.release import release_store
    from usam_video.release import FORMATS, ReleasePolicy
    from usam_video.store import PseudoLabelStore

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="release writer threads")
    args = parser.parse_args(argv)
    davis = shared_data_root() / "davis"
    videos = ["tennis", "car-shadow"] if args.small else None
    rounds = 1 if args.small else args.rounds
    workdir = Path(tempfile.mkdtemp(prefix="usam-bench-release-"))
    try:
        store_path = workdir / "sample.zarr"
        frames = write_sample_store(davis, store_path, videos)
        total = sum(frames.values())
        store = PseudoLabelStore.open(store_path, "r")
        index_maps = []
        for video_id in store.videos():
            ids = store.summary(video_id).object_ids
            for t in range(frames[video_id]):
                index = np.zeros((store.summary(video_id).height, store.summary(video_id).width), np.uint8)
                for plane, object_id in zip(store.read_masks(video_id, t), ids, strict=True):
                    index[plane] = object_id
                index_maps.append((video_id, t, index))
        counter = iter(range(1_000_000))
        # The sample's store holds ground truth under one stored score and no heads: release by it.
        policy = ReleasePolicy(score="iou_video")

        def release(fmt: str) -> Callable[[], float]:
            def run() -> float:
                out = workdir / f"{fmt}-{next(counter)}"
                elapsed = stopwatch()
                release_store(store_path, fmt, out, workers=args.workers, policy=policy)
                seconds = elapsed()
                shutil.rmtree(out)
                return seconds

            return run

        def png() -> float:
            out = workdir / f"png-{next(counter)}"
            elapsed = stopwatch()
            for video_id, t, index in index_maps:
                write_palette_png(out / video_id / f"{t:05d}.png", index)
            seconds = elapsed()
            shutil.rmtree(out)
            return seconds

        variants: dict[str, Callable[[], float]] = {"palette PNG write": png}
        variants |= {f"release {fmt}": release(fmt) for fmt in FORMATS}
        times = alternate(variants, rounds)
        png_fps = total / median(times["palette PNG write"])
        rows, figures = [], {"machine": machine_info(), "frames": total, "workers": args.workers, "fps": {}}
        for name, seconds in times.items():
            fps = total / median(seconds)
            figures["fps"][name] = fps
            rows.append([name, f"{fps:.1f}", f"{png_fps / fps:.2f}x"])
        print(
            f"{total} frames of the DAVIS sample (854x480), {rounds} round(s), {args.workers} writer threads"
        )
        print(format_table(["what", "frames/s", "time per frame vs palette PNG"], rows))
        ratio = png_fps / figures["fps"]["release davis"]
        figures["davis_vs_png"] = ratio
        verdict = "met" if ratio <= GOAL_DAVIS_VS_PNG else "NOT MET"
        goal = f"goal: davis release <= {GOAL_DAVIS_VS_PNG:g}x the palette-PNG write per frame"
        print(f"{goal}: {ratio:.2f}x -> {verdict}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return finish(figures, args.json)


if __name__ == "__main__":
    main()
