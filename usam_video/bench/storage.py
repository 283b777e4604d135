"""Bytes per frame and write speed of the store's Zarr masks vs DAVIS palette PNGs (benchmark 4).

Masks: the real DAVIS annotations beside the repository (``$USAM_SHARED_DATA/davis/
Annotations/480p/*``, 854x480) and generated ones (moving shapes at 854x480). Every frame is
written three ways from the same ``bool (O, H, W)`` masks:

* ``png``: one palette PNG per frame (:func:`usam_video.palette.write_palette_png`;
  index ``i + 1`` for object ``i``, later objects on top: DAVIS's own format);
* ``store``: :class:`~usam_video.store.PseudoLabelStore` itself, ``begin_video`` +
  ``write_frame`` (masks plus the tiny scores/status/reason chunks): what the pipeline pays;
* ``zarr/<codec>``: the masks array alone in the store's layout (``bool (T, O, H, W)``, one
  chunk per frame holding every object), once with the store's codec (zarr's
  default for bool: zstd level 0, plus a CRC-32C per chunk), once in the layout used before
  shards (one file per frame-object), and once per alternative codec (zstd levels, PackBits +
  zstd, Blosc bit-shuffle, gzip), with and without one shard per frame.

Then the layouts side by side (issue #17: the store writes on a writer thread, in blocks):

* masks written frame by frame at 854x480 and 1920x1080 with 2 and 8 objects in each of
  :data:`usam_video.store.mask_codecs.MASK_LAYOUTS` (one chunk per frame-object, one shard per
  frame, blocks of 8 frames as chunks or as one shard, one chunk of every object per frame
  through zarr and through the store's :class:`~usam_video.store.chunks.ChunkWriter`): ms per
  frame, bytes, disk and files;
* the six small arrays written in blocks of 1 (the layout before blocks), 8, 32 and 64 frames;
* the store's own ``write_frame``: what its caller pays per frame, and the whole write until
  ``finish`` returns.

Bytes are the chunk files' sizes (``zarr.json`` metadata is listed apart; allocated disk
blocks too, since small files occupy whole 4 KiB blocks). Speed is frames per second of
writing, alternated variant by variant over rounds (medians). Goals: Zarr bytes <= 0.5 x PNG
bytes and Zarr write speed >= PNG write speed. The store is not changed here: when its codec
misses a goal, the table shows which alternative would meet both.

    python -m usam_video.bench.storage            # all DAVIS samples + 3 generated videos, 3 rounds
    python -m usam_video.bench.storage --small    # two DAVIS frames + one tiny generated video
                                                  # (layouts at 128x96 only)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.bench.common import (
    alternate,
    base_parser,
    finish,
    format_bytes,
    format_table,
    machine_info,
    median,
    shared_data_root,
    stopwatch,
)

__all__ = [
    "GOAL_BYTES_RATIO",
    "GOAL_SPEED_RATIO",
    "LAYOUT_OBJECTS",
    "LAYOUT_SIZES",
    "PACE_S",
    "SMALL_BLOCKS",
    "MaskVideo",
    "codec_variants",
    "load_davis",
    "main",
    "measure_layouts",
]

#: Zarr bytes / PNG bytes must not exceed this.
GOAL_BYTES_RATIO = 0.5
#: Zarr frames/s / PNG frames/s must reach this.
GOAL_SPEED_RATIO = 1.0
#: Frame sizes ``(H, W)`` and object counts of the layout comparison (``--small``: 96x128).
LAYOUT_SIZES = ((480, 854), (1080, 1920))
LAYOUT_OBJECTS = (2, 8)
#: Frames per block of the small arrays compared (1: the layout before blocks).
SMALL_BLOCKS = (1, 8, 32, 64)
#: Seconds between frames of the paced write (a model's time per frame; the writer keeps up).
PACE_S = 0.03


@dataclass(frozen=True, eq=False)
class MaskVideo:
    """One video's masks: ``masks`` ``bool`` ``(T, O, H, W)`` and the object ids."""

    source: str  # "davis" or "generated"
    video_id: str
    object_ids: tuple[int, ...]
    masks: np.ndarray


def load_davis(root: Path, limit_frames: int | None = None) -> list[MaskVideo]:
    """Every annotated frame of every sequence under ``root/Annotations/480p`` as bool masks.

    Void pixels (255) belong to no object, as in the store.
    """
    from usam_video.palette import VOID_INDEX, read_palette_png

    videos = []
    for folder in sorted(p for p in (root / "Annotations" / "480p").iterdir() if p.is_dir()):
        paths = sorted(folder.glob("*.png"))[:limit_frames]
        maps = np.stack([read_palette_png(p) for p in paths])
        ids = tuple(int(v) for v in np.unique(maps) if v not in (0, VOID_INDEX))
        masks = np.stack([maps == i for i in ids], axis=1)
        videos.append(MaskVideo("davis", folder.name, ids, masks))
    return videos


def generated(num_videos: int, num_frames: int, height: int, width: int) -> list[MaskVideo]:
    """Moving-shape masks (1, 2, 3, ... objects) rendered by :mod:`usam_video.datasets.synthetic`."""
    from usam_video.datasets.synthetic import SyntheticVideoSpec, render_video

    videos = []
    for index in range(num_videos):
        count = 1 + index % 3
        spec = SyntheticVideoSpec(f"gen-{index}", num_frames, height, width, count, seed=11 + index)
        labels = render_video(spec).labels
        ids = tuple(range(1, count + 1))
        videos.append(MaskVideo("generated", spec.name, ids, np.stack([labels == i for i in ids], axis=1)))
    return videos


def codec_variants() -> dict[str, dict[str, Any]]:
    """The zarr codec variants compared (see :func:`usam_video.store.mask_codecs.codec_variants`)."""
    from usam_video.store.mask_codecs import codec_variants as variants

    return variants()


@dataclass(frozen=True)
class _Size:
    chunk_bytes: int  # sum of file sizes, metadata excluded
    meta_bytes: int  # zarr.json files
    allocated: int  # st_blocks * 512 of every file
    files: int = 0  # chunk (or shard) files


def _size(path: Path, mask_dir: str | None = None) -> _Size:
    chunk = meta = allocated = count = 0
    for dirpath, _, files in os.walk(path):
        if mask_dir is not None and mask_dir not in Path(dirpath).relative_to(path).parts[:3]:
            continue
        for name in files:
            stat = os.stat(os.path.join(dirpath, name))
            allocated += stat.st_blocks * 512
            if name == "zarr.json":
                meta += stat.st_size
            else:
                chunk += stat.st_size
                count += 1
    return _Size(chunk, meta, allocated, count)


def _index_map(frame_masks: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(frame_masks.shape[1:], dtype=np.uint8)
    for plane, object_id in zip(frame_masks, ids, strict=True):
        out[plane] = object_id
    return out


def _writers(
    videos: list[MaskVideo], workdir: Path
) -> tuple[dict[str, Callable[[], float]], dict[str, _Size]]:
    """One callable per variant: writes every video into a fresh folder, returns seconds, and
    records the size of what it wrote (the last run's) in the returned dict."""
    from usam_video.palette import write_palette_png
    from usam_video.store import PseudoLabelStore
    from usam_video.store.mask_codecs import write_masks
    from usam_video.types import VideoRef

    sizes: dict[str, _Size] = {}
    counter = iter(range(1_000_000))
    # Index maps are the PNG writer's input, as bool planes are the store's: both prepared untimed.
    index_maps = {v.video_id: [_index_map(m, v.object_ids) for m in v.masks] for v in videos}

    def fresh(name: str) -> Path:
        path = workdir / f"{name.replace(' ', '_')}-{next(counter)}"
        return path

    def png() -> float:
        out = fresh("png")
        elapsed = stopwatch()
        for video in videos:
            for t, index_map in enumerate(index_maps[video.video_id]):
                write_palette_png(out / video.video_id / f"{t:05d}.png", index_map)
        seconds = elapsed()
        sizes["png"] = _size(out)
        shutil.rmtree(out)
        return seconds

    def store() -> float:
        out = fresh("store")
        elapsed = stopwatch()
        pseudo = PseudoLabelStore.open(out)
        for video in videos:
            t_, o, h, w = video.masks.shape
            ref = VideoRef("bench", video.video_id, t_, h, w)
            writer = pseudo.begin_video(ref, video.object_ids, ("score",), (), {}, "bench")
            scores = np.zeros((o, 1), np.float32)
            status = np.ones(o, np.uint8)
            reason = np.zeros(o, np.uint8)
            for t in range(t_):
                writer.write_frame(t, video.masks[t], scores, status, reason)
            writer.finish()  # the writer thread's work counts too
        seconds = elapsed()
        sizes["store"] = _size(out, mask_dir="masks")
        shutil.rmtree(out)
        return seconds

    def zarr_variant(name: str, kwargs: dict[str, Any]) -> Callable[[], float]:
        def run() -> float:
            out = fresh(name)
            elapsed = stopwatch()
            for video in videos:
                write_masks(out / video.video_id, video.masks, kwargs)
            seconds = elapsed()
            sizes[f"zarr/{name}"] = _size(out)
            _check_roundtrip(out, videos)
            shutil.rmtree(out)
            return seconds

        return run

    variants: dict[str, Callable[[], float]] = {"png": png, "store": store}
    for name, kwargs in codec_variants().items():
        variants[f"zarr/{name}"] = zarr_variant(name, kwargs)
    return variants, sizes


def _check_roundtrip(out: Path, videos: list[MaskVideo]) -> None:
    from usam_video.store.mask_codecs import read_masks

    for video in videos:
        if not np.array_equal(read_masks(out / video.video_id), video.masks):
            raise RuntimeError(f"{out}: the masks read back differ from those written ({video.video_id})")


def _store_codecs_match_default(workdir: Path) -> bool:
    """True if the store's masks array uses the codecs of ``zstd-0 (store)`` (zstd-0 + CRC-32C)."""
    from usam_video.store.mask_codecs import store_uses_default_codecs

    return store_uses_default_codecs(workdir)


def measure(videos: list[MaskVideo], repeats: int, workdir: Path) -> dict[str, Any]:
    """Alternate every writer ``repeats`` times over ``videos``; sizes, speeds and ratios to PNG."""
    variants, sizes = _writers(videos, workdir)
    times = alternate(variants, repeats=repeats)
    frames = sum(v.masks.shape[0] for v in videos)
    png_bytes = sizes["png"].chunk_bytes
    png_speed = frames / median(times["png"])
    rows = {}
    for name, seconds in times.items():
        size = sizes[name]
        speed = frames / median(seconds)
        rows[name] = {
            "bytes": size.chunk_bytes,
            "bytes_per_frame": size.chunk_bytes / frames,
            "meta_bytes": size.meta_bytes,
            "allocated_bytes": size.allocated,
            "bytes_ratio_to_png": size.chunk_bytes / png_bytes,
            "frames_per_s": speed,
            "speed_ratio_to_png": speed / png_speed,
            "seconds": seconds,
        }
        rows[name]["meets_bytes_goal"] = rows[name]["bytes_ratio_to_png"] <= GOAL_BYTES_RATIO
        rows[name]["meets_speed_goal"] = rows[name]["speed_ratio_to_png"] >= GOAL_SPEED_RATIO
    return {
        "videos": [f"{v.video_id} ({v.masks.shape[0]} fr, {len(v.object_ids)} obj)" for v in videos],
        "frames": frames,
        "frame_size": list(videos[0].masks.shape[2:]),
        "variants": rows,
    }


def _mask_pool(height: int, width: int, objects: int, frames: int) -> np.ndarray:
    """``bool`` ``(frames, objects, H, W)`` moving-shape masks (rendered once, written in a loop)."""
    from usam_video.datasets.synthetic import SyntheticVideoSpec, render_video

    spec = SyntheticVideoSpec(f"layout-{objects}", frames, height, width, objects, seed=7)
    labels = render_video(spec).labels
    return np.stack([labels == i for i in range(1, objects + 1)], axis=1)


def _masks_and_store(
    height: int, width: int, objects: int, num_frames: int, repeats: int, workdir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every masks layout and the store's ``write_frame`` at one frame size and object count."""
    from usam_video.store import PseudoLabelStore
    from usam_video.store.mask_codecs import MASK_LAYOUTS, write_mask_layout
    from usam_video.types import VideoRef

    h, w, o = height, width, objects
    pool = _mask_pool(h, w, o, 8)
    seen: dict[str, _Size] = {}
    caller: list[float] = []
    counter = iter(range(1_000_000))

    def layout_run(layout: str) -> Callable[[], float]:
        def run() -> float:
            out = workdir / f"layout-{next(counter)}"
            seconds = write_mask_layout(out, pool, num_frames, layout)
            seen[layout] = _size(out)
            shutil.rmtree(out)
            return seconds / num_frames

        return run

    def store_run() -> float:
        out = workdir / f"store-{next(counter)}"
        pseudo = PseudoLabelStore.open(out)
        names = tuple(f"s{i}" for i in range(12))
        writer = pseudo.begin_video(
            VideoRef("bench", "v", num_frames, h, w), range(1, o + 1), names, (), {}, "b"
        )
        scores = np.zeros((o, 12), np.float32)
        status, reason = np.ones(o, np.uint8), np.zeros(o, np.uint8)
        elapsed, spent = stopwatch(), 0.0
        for t in range(num_frames):
            started = stopwatch()
            writer.write_frame(t, pool[t % len(pool)], scores, status, reason)
            spent += started()
        writer.finish()
        seconds = elapsed()
        caller.append(spent / num_frames)
        seen["store"] = _size(out / "videos" / "v" / "masks")
        shutil.rmtree(out)
        return seconds / num_frames

    def paced_run() -> float:
        """The median hand-over (ms) when frames come every :data:`PACE_S`, as from a model."""
        out = workdir / f"paced-{next(counter)}"
        pseudo = PseudoLabelStore.open(out)
        ref = VideoRef("bench", "v", num_frames, h, w)
        writer = pseudo.begin_video(ref, range(1, o + 1), ("s",), (), {}, "b")
        scores = np.zeros((o, 1), np.float32)
        status, reason = np.ones(o, np.uint8), np.zeros(o, np.uint8)
        calls = []
        for t in range(num_frames):
            started = stopwatch()
            writer.write_frame(t, pool[t % len(pool)], scores, status, reason)
            calls.append(started())
            time.sleep(PACE_S)
        writer.finish()
        shutil.rmtree(out)
        return 1000 * median(calls)

    variants = {layout: layout_run(layout) for layout in MASK_LAYOUTS}
    variants["store"] = store_run
    times = alternate(variants, repeats=repeats)
    paced = paced_run()
    masks = [
        {
            "size": f"{w}x{h}",
            "objects": o,
            "layout": layout,
            "ms_per_frame": 1000 * median(times[layout]),
            "bytes_per_frame": seen[layout].chunk_bytes / num_frames,
            "allocated_per_frame": seen[layout].allocated / num_frames,
            "files_per_frame": seen[layout].files / num_frames,
            "held_bytes": int(MASK_LAYOUTS[layout]["frames"]) * o * h * w,
        }
        for layout in MASK_LAYOUTS
    ]
    store = {
        "size": f"{w}x{h}",
        "objects": o,
        "caller_ms_per_frame": 1000 * median(caller),
        "paced_ms_per_frame": paced,
        "total_ms_per_frame": 1000 * median(times["store"]),
        "allocated_per_frame": seen["store"].allocated / num_frames,
    }
    return masks, store


def _small_arrays(objects: int, num_frames: int, repeats: int, workdir: Path) -> list[dict[str, Any]]:
    """The six small arrays written in blocks of each of :data:`SMALL_BLOCKS` frames."""
    from usam_video.store.mask_codecs import write_small_blocks

    files: dict[int, int] = {}
    counter = iter(range(1_000_000))

    def run(block: int) -> Callable[[], float]:
        def write() -> float:
            out = workdir / f"small-{next(counter)}"
            seconds = write_small_blocks(out, num_frames, objects, block)
            files[block] = _size(out).files
            shutil.rmtree(out)
            return seconds / num_frames

        return write

    times = alternate({str(b): run(b) for b in SMALL_BLOCKS}, repeats=repeats)
    return [
        {
            "objects": objects,
            "block": b,
            "ms_per_frame": 1000 * median(times[str(b)]),
            "files_per_1000_frames": 1000 * files[b] / num_frames,
        }
        for b in SMALL_BLOCKS
    ]


def measure_layouts(
    sizes: Sequence[tuple[int, int]],
    objects: Sequence[int],
    num_frames: int,
    small_frames: int,
    repeats: int,
    workdir: Path,
) -> dict[str, Any]:
    """Masks layouts, small-array blocks and the store's ``write_frame``, alternated ``repeats``
    times (medians); see the module docstring."""
    masks_rows: list[dict[str, Any]] = []
    store_rows = []
    for h, w in sizes:
        for o in objects:
            masks, store = _masks_and_store(h, w, o, num_frames, repeats, workdir)
            masks_rows.extend(masks)
            store_rows.append(store)
    small_rows = [row for o in objects for row in _small_arrays(o, small_frames, repeats, workdir)]
    return {
        "frames": num_frames,
        "small_frames": small_frames,
        "masks": masks_rows,
        "small_arrays": small_rows,
        "store": store_rows,
    }


def _layout_report(layouts: dict[str, Any]) -> str:
    lines = [
        f"\nmasks written frame by frame ({layouts['frames']} frames, the store's codecs): "
        "ms per frame on the writer thread, chunk bytes, disk allocated, files, masks held in memory"
    ]
    rows = [
        [r["size"], r["objects"], r["layout"], f"{r['ms_per_frame']:.2f}", format_bytes(r["bytes_per_frame"]),
         format_bytes(r["allocated_per_frame"]), f"{r['files_per_frame']:.2f}", format_bytes(r["held_bytes"])]
        for r in layouts["masks"]
    ]  # fmt: skip
    headers = [
        "frame",
        "objects",
        "layout",
        "ms/frame",
        "bytes/frame",
        "on disk/frame",
        "files/frame",
        "held",
    ]
    lines.append(format_table(headers, rows))
    lines.append(
        f"\nsmall arrays (scores x12, reason, source, revision, candidate_scores 4x3, status; "
        f"{layouts['small_frames']} frames) by block of frames (1 = chunks (1, 1, ...), before blocks)"
    )
    rows = [
        [r["objects"], r["block"], f"{r['ms_per_frame']:.3f}", f"{r['files_per_1000_frames']:.0f}"]
        for r in layouts["small_arrays"]
    ]
    lines.append(format_table(["objects", "block", "ms/frame", "files per 1000 frames"], rows))
    lines.append(
        "\nthe store's write_frame (ms per frame): what its caller pays when frames come every "
        f"{1000 * PACE_S:.0f} ms (median) and back to back (mean, the queue full), the whole write until "
        "finish, and what the caller paid before the writer thread (the (before) rows above)"
    )
    before = {
        (r["size"], r["objects"]): r["ms_per_frame"]
        for r in layouts["masks"]
        if r["layout"].endswith("(before)")
    }
    small_before = {r["objects"]: r["ms_per_frame"] for r in layouts["small_arrays"] if r["block"] == 1}
    rows = [
        [r["size"], r["objects"], f"{r['paced_ms_per_frame']:.2f}", f"{r['caller_ms_per_frame']:.2f}",
         f"{r['total_ms_per_frame']:.2f}",
         f"{before[(r['size'], r['objects'])] + small_before[r['objects']]:.2f}",
         format_bytes(r["allocated_per_frame"])]
        for r in layouts["store"]
    ]  # fmt: skip
    headers = ["frame", "objects", "caller, paced", "caller, back to back", "until finish", "caller before",
               "masks on disk/frame"]  # fmt: skip
    lines.append(format_table(headers, rows))
    return "\n".join(lines)


def _recommend(sets: dict[str, dict[str, Any]]) -> str | None:
    """The smallest zarr codec meeting both goals on every mask set, if any."""
    names = [n for n in next(iter(sets.values()))["variants"] if n.startswith("zarr/")]

    def meets(name: str, mask_set: dict[str, Any]) -> bool:
        row = mask_set["variants"][name]
        return bool(row["meets_bytes_goal"] and row["meets_speed_goal"])

    good = [n for n in names if all(meets(n, s) for s in sets.values())]
    if not good:
        return None
    return min(good, key=lambda n: sum(s["variants"][n]["bytes_ratio_to_png"] for s in sets.values()))


def _report(figures: dict[str, Any]) -> str:
    lines = [
        f"storage: {figures['repeats']} alternating round(s), medians; bytes = chunk files "
        "(zarr.json metadata apart); goals: bytes <= 0.5 x PNG, speed >= PNG"
    ]
    for label, mask_set in figures["sets"].items():
        lines.append(f"\n{label}: {mask_set['frames']} frames of {mask_set['frame_size'][1]}x"
                     f"{mask_set['frame_size'][0]}: {', '.join(mask_set['videos'])}")  # fmt: skip
        rows = []
        for name, r in mask_set["variants"].items():
            goals = "-" if name == "png" else (
                ("bytes ok" if r["meets_bytes_goal"] else "BYTES") + " / "
                + ("speed ok" if r["meets_speed_goal"] else "SPEED")
            )  # fmt: skip
            rows.append([
                name, format_bytes(r["bytes_per_frame"]), f"{r['bytes_ratio_to_png']:.3f}",
                format_bytes(r["allocated_bytes"] / mask_set["frames"]), format_bytes(r["meta_bytes"]),
                f"{r['frames_per_s']:.0f}", f"{r['speed_ratio_to_png']:.2f}", goals,
            ])  # fmt: skip
        headers = ["variant", "bytes/frame", "x PNG", "on disk/frame", "metadata", "frames/s", "x PNG",
                   "goals"]  # fmt: skip
        lines.append(format_table(headers, rows))
    store_default = figures["store_codec_is_zarr_default"]
    lines.append(f"\nthe store's masks codec is zarr's bool default (zstd level 0): {store_default}")
    lines.append(f"store codec meets both goals on every set: {figures['store_codec_meets_goals']}")
    lines.append(f"smallest zarr codec meeting both goals on every set: {figures['recommended'] or 'none'}")
    lines.append(_layout_report(figures["layouts"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the storage benchmark and return its figures (see the module docstring)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="alternating rounds (default 3, small 1)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.small else 3)
    davis_root = shared_data_root() / "davis"
    sets: dict[str, list[MaskVideo]] = {}
    if (davis_root / "Annotations" / "480p").is_dir():
        davis = load_davis(davis_root, limit_frames=1 if args.small else None)
        sets["DAVIS 480p annotations"] = davis[:2] if args.small else davis
    if args.small:
        sets["generated 128x96"] = generated(1, 3, 96, 128)
    else:
        sets["generated 854x480"] = generated(3, 30, 480, 854)
    with tempfile.TemporaryDirectory(prefix="usam-bench-storage-") as tmp:
        workdir = Path(tmp)
        results = {label: measure(videos, repeats, workdir) for label, videos in sets.items()}
        default_ok = _store_codecs_match_default(workdir)
        if args.small:
            layouts = measure_layouts(((96, 128),), LAYOUT_OBJECTS, 16, 64, repeats, workdir)
        else:
            layouts = measure_layouts(LAYOUT_SIZES, LAYOUT_OBJECTS, 64, 256, repeats, workdir)
    store_key = "zarr/zstd-0 (store)"
    figures: dict[str, Any] = {
        "benchmark": "storage",
        "machine": machine_info(),
        "repeats": repeats,
        "goal_bytes_ratio": GOAL_BYTES_RATIO,
        "goal_speed_ratio": GOAL_SPEED_RATIO,
        "sets": results,
        "store_codec_is_zarr_default": default_ok,
        "store_codec_meets_goals": all(
            s["variants"][store_key]["meets_bytes_goal"] and s["variants"][store_key]["meets_speed_goal"]
            for s in results.values()
        ),
        "recommended": _recommend(results),
        "layouts": layouts,
    }
    print(_report(figures))
    return finish(figures, args.json)


if __name__ == "__main__":
    main()
