"""Generated datasets: rendered synthetic videos written in the layouts the readers serve.

:mod:`usam_video.datasets.rendering` draws the videos; this module writes them with the readers'
own layout names (:mod:`.davis`, :mod:`.mose`, :mod:`.sav`), so a generated dataset is read back
by the reader of its format::

    <root>/JPEGImages/480p/<seq>/00000.jpg ...    RGB JPEG, quality 95, no chroma subsampling
    <root>/Annotations/480p/<seq>/00000.png ...   palette PNG: 0 background, 1..N objects
    <root>/ImageSets/2017/<split>.txt             one sequence name per line

The same rendered videos can be written in the other layouts (:func:`write_mose_dataset`,
:func:`write_sav_video` for SA-V train's mp4 + JSON masklets, :func:`write_sav_frames_dataset`
for SA-V val/test). The rendering names are re-exported, so a caller that generates a dataset
imports one module.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from usam_video.config import DatasetConfig
from usam_video.datasets import davis, mose, sav
from usam_video.datasets.mp4_writer import write_mjpeg_mp4
from usam_video.datasets.rendering import (
    GENERATED_STREAMS,
    MAX_FRAMES,
    MAX_OBJECTS,
    MIN_SIDE,
    MIN_VISIBLE_PIXELS,
    STYLES,
    SyntheticVideo,
    SyntheticVideoSpec,
    check_int,
    check_name,
    generated_specs,
    render_video,
)
from usam_video.errors import InputError
from usam_video.palette import write_palette_png

__all__ = [
    "JPEG_QUALITY",
    "MAX_FRAMES",
    "MAX_OBJECTS",
    "MIN_SIDE",
    "MIN_VISIBLE_PIXELS",
    "STYLES",
    "SyntheticVideo",
    "SyntheticVideoSpec",
    "GENERATED_STREAMS",
    "generated_specs",
    "make_demo_dataset",
    "render_video",
    "write_davis_dataset",
    "write_mose_dataset",
    "write_sav_frames_dataset",
    "write_sav_video",
]

#: JPEG quality of the written frames (high, so decoded frames stay close to the rendered ones).
JPEG_QUALITY = 95
#: The resolution folder of generated DAVIS-layout datasets: the one a dataset config reads by
#: default ("480p").
RESOLUTION: str = DatasetConfig.model_fields["resolution"].default
# Files this module writes into a sequence folder; only these are cleared on rewrite.
_FRAME_FILE_RE = re.compile(r"\d{5}\.(?:jpg|png)\Z")


def write_davis_dataset(
    root: Path,
    specs: Sequence[SyntheticVideoSpec],
    split: str = "val",
    annotate_all_frames: bool = True,
) -> list[str]:
    """Render every spec and write it under ``root`` in the DAVIS 2017 layout.

    Frames go to ``JPEGImages/480p/<name>/%05d.jpg`` (RGB, quality 95, 4:4:4 chroma) and labels to
    ``Annotations/480p/<name>/%05d.png`` (palette PNG). Frame and mask files left in those
    folders by an earlier write are removed first, so a shorter rewrite leaves no stale frames.
    The names are merged into ``ImageSets/2017/<split>.txt`` once, after all sequences are
    written: lines already there are kept, new names appended, so several splits (or calls)
    can share one root.

    Args:
        root: Dataset root; created if missing.
        specs: Videos to write; names must be unique.
        split: Split list name, e.g. ``"val"``, ``"train"``, ``"test-dev"``.
        annotate_all_frames: If False only frame ``00000`` gets a PNG, like DAVIS test-dev.

    Returns:
        The sequence names, in the order of ``specs``.

    Raises:
        InputError: ``specs`` is empty, holds a non-spec or a repeated name, or ``split`` is
            not a plain name.
    """
    root = Path(root)
    check_name("write_davis_dataset: split", split)
    specs = list(specs)
    if not specs:
        raise InputError("write_davis_dataset: expected at least one SyntheticVideoSpec, got none.")
    for spec in specs:
        if not isinstance(spec, SyntheticVideoSpec):
            raise InputError(
                f"write_davis_dataset: expected SyntheticVideoSpec items, got {type(spec).__name__}."
            )
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(
            f"write_davis_dataset: expected unique sequence names, got repeated {repeated}. "
            "Give each spec its own name."
        )

    for spec in specs:
        video = render_video(spec)
        image_dir = root / davis.IMAGES_DIR / RESOLUTION / spec.name
        mask_dir = root / davis.ANNOTATIONS_DIR / RESOLUTION / spec.name
        for folder in (image_dir, mask_dir):
            folder.mkdir(parents=True, exist_ok=True)
            _remove_frame_files(folder)
        for t in range(spec.num_frames):
            # 4:4:4 chroma: the default 4:2:0 smears the saturated object colours across
            # their edges (about twice the decoding error), blurring mask boundaries.
            Image.fromarray(video.frames[t]).save(
                image_dir / f"{t:05d}.jpg", quality=JPEG_QUALITY, subsampling=0
            )
            if annotate_all_frames or t == 0:
                write_palette_png(mask_dir / f"{t:05d}.png", video.labels[t])

    _merge_split_list(davis.split_list_file(root, split), names)
    return names


def make_demo_dataset(
    root: Path,
    num_videos: int = 3,
    num_frames: int = 12,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    split: str = "val",
) -> list[str]:
    """Write ``num_videos`` small videos named ``synth-000``, ``synth-001``, ... under ``root``.

    Video ``i`` has ``1 + i % 3`` objects (so the default three videos cover 1, 2 and 3
    objects) and its own seed derived from ``(seed, i)``, so videos differ from each other but
    the dataset is the same for the same arguments. All frames are annotated.

    Returns:
        The sequence names.

    Raises:
        InputError: ``num_videos`` is not in 1..1000, or a size is out of range
            (see :class:`SyntheticVideoSpec`).
    """
    check_int("make_demo_dataset: num_videos", num_videos, 1, 1000)
    check_int("make_demo_dataset: seed", seed, 0, None)
    specs = [
        SyntheticVideoSpec(
            name=f"synth-{index:03d}",
            num_frames=num_frames,
            height=height,
            width=width,
            num_objects=1 + index % 3,
            # SeedSequence mixes (seed, index) so neighbouring demo seeds do not share videos.
            seed=int(np.random.SeedSequence([seed, index]).generate_state(1)[0]),
        )
        for index in range(num_videos)
    ]
    return write_davis_dataset(root, specs, split=split, annotate_all_frames=True)


def _check_videos(where: str, videos: Sequence[SyntheticVideo]) -> list[SyntheticVideo]:
    videos = list(videos)
    if not videos or not all(isinstance(v, SyntheticVideo) for v in videos):
        raise InputError(f"{where}: expected one or more SyntheticVideo items, got {videos!r:.80}.")
    names = [v.name for v in videos]
    for name in names:
        check_name(f"{where}: video name", name)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"{where}: expected unique video names, got repeated {repeated}.")
    return videos


def _write_jpegs(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _remove_frame_files(folder)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=JPEG_QUALITY, subsampling=0)


def write_mose_dataset(
    root: Path,
    videos: Sequence[SyntheticVideo],
    split: str = "train",
    annotate_all_frames: bool = True,
    write_meta: bool = True,
) -> list[str]:
    """Write rendered videos in the MOSE layout (video names are the MOSE ids).

    ``<root>/<split>/JPEGImages/<name>/%05d.jpg``, ``<root>/<split>/Annotations/<name>/%05d.png``
    (palette PNG, every frame or, like ``valid``, frame 0 only) and, with ``write_meta``,
    ``<root>/meta_<split>.json`` ``{"videos": {name: {"length", "height", "width", "objects":
    {"<id>": {"frames": [...]}}}}}`` merged with entries already there.

    Returns:
        The video names, in order.
    """
    root = Path(root)
    check_name("write_mose_dataset: split", split)
    videos = _check_videos("write_mose_dataset", videos)
    meta_path = root / mose.meta_file_name(split)
    meta = json.loads(meta_path.read_text()) if write_meta and meta_path.is_file() else {"videos": {}}
    for video in videos:
        _write_jpegs(root / split / mose.IMAGES_DIR / video.name, video.frames)
        mask_dir = root / split / mose.ANNOTATIONS_DIR / video.name
        mask_dir.mkdir(parents=True, exist_ok=True)
        _remove_frame_files(mask_dir)
        num_frames, height, width = video.labels.shape
        for t in range(num_frames if annotate_all_frames else 1):
            write_palette_png(mask_dir / f"{t:05d}.png", video.labels[t])
        objects = {
            str(int(obj)): {
                "frames": [f"{t:05d}" for t in range(num_frames) if (video.labels[t] == obj).any()]
            }
            for obj in np.unique(video.labels)
            if obj not in (0, 255)
        }
        meta["videos"][video.name] = {
            "length": num_frames,
            "height": height,
            "width": width,
            "objects": objects,
        }
    if write_meta:
        meta_path.write_text(json.dumps(meta))
    return [video.name for video in videos]


def _object_masks(video: SyntheticVideo) -> dict[int, np.ndarray]:
    """``{label id: bool (T, H, W)}`` for every id 1..max label (absent ids all False)."""
    top = int(video.labels.max())
    return {obj: video.labels == obj for obj in range(1, top + 1)}


def write_sav_video(
    folder: Path,
    video: SyntheticVideo,
    source: str = "manual",
    step: int = 4,
    fps: float = 24.0,
    write_mp4: bool = True,
) -> Path:
    """Write a rendered video as SA-V train ships it: ``<name>.mp4`` plus ``<name>_<source>.json``.

    The mp4 is Motion-JPEG (:func:`~usam_video.datasets.mp4_writer.write_mjpeg_mp4`). Label id
    ``k`` becomes masklet ``k - 1``; ``masklet[t][k - 1]`` is the COCO compressed RLE of video
    frame ``step * t``, all-zero where the object is absent; ``masklet_first_appeared_frame``
    counts annotated frames, as in SA-V.

    Returns:
        The JSON path.
    """
    folder = Path(folder)
    _check_videos("write_sav_video", [video])
    if source not in ("manual", "auto"):
        raise InputError(f"write_sav_video: expected source 'manual' or 'auto', got {source!r}.")
    check_int("write_sav_video: step", step, 1, None)
    num_frames, height, width = video.labels.shape
    if write_mp4:
        write_mjpeg_mp4(folder / f"{video.name}.mp4", iter(video.frames), fps=fps)
    masks = _object_masks(video)
    annotated = range(0, num_frames, step)
    masklet = []
    for t in annotated:
        row = []
        for obj_masks in masks.values():
            rle = mask_utils.encode(np.asfortranarray(obj_masks[t].astype(np.uint8)))
            row.append({"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")})
        masklet.append(row)
    first = [next((i for i, t in enumerate(annotated) if m[t].any()), -1) for m in masks.values()]
    data = {
        "video_id": video.name,
        "video_frame_count": float(num_frames),
        "video_height": float(height),
        "video_width": float(width),
        "masklet": masklet,
        "masklet_id": list(range(len(masks))),
        "masklet_first_appeared_frame": [float(f) for f in first],
        "masklet_num": len(masks),
    }
    path = folder / sav.masklet_file_name(video.name, source)
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_sav_frames_dataset(
    root: Path, videos: Sequence[SyntheticVideo], split: str = "val", step: int = 4
) -> list[str]:
    """Write rendered videos as SA-V val/test ship: JPEG frames plus per-object binary PNGs.

    ``<root>/JPEGImages_24fps/<name>/%05d.jpg``, ``<root>/Annotations_6fps/<name>/<k-1:03d>/%05d.png``
    (mode ``L``, 0 or 255, one per object on every ``step``-th frame, named by video frame)
    and ``<root>/sav_<split>.txt`` (merged).

    Returns:
        The video names, in order.
    """
    root = Path(root)
    check_name("write_sav_frames_dataset: split", split)
    check_int("write_sav_frames_dataset: step", step, 1, None)
    videos = _check_videos("write_sav_frames_dataset", videos)
    for video in videos:
        _write_jpegs(root / sav.FRAMES_DIR / video.name, video.frames)
        for obj, obj_masks in _object_masks(video).items():
            obj_dir = root / sav.ANNOTATIONS_DIR / video.name / f"{obj - 1:03d}"
            obj_dir.mkdir(parents=True, exist_ok=True)
            _remove_frame_files(obj_dir)
            for t in range(0, len(obj_masks), step):
                Image.fromarray(obj_masks[t].astype(np.uint8) * 255, mode="L").save(obj_dir / f"{t:05d}.png")
    _merge_split_list(root / sav.split_list_name(split), [video.name for video in videos])
    return [video.name for video in videos]


# --------------------------------------------------------------------------- writing


def _remove_frame_files(folder: Path) -> None:
    """Delete ``%05d.jpg`` / ``%05d.png`` files left by an earlier write; keep anything else."""
    for path in folder.iterdir():
        if path.is_file() and _FRAME_FILE_RE.match(path.name):
            path.unlink()


def _merge_split_list(path: Path, names: Sequence[str]) -> None:
    """Append ``names`` missing from the split list at ``path``, keeping existing lines."""
    existing: list[str] = []
    if path.exists():
        existing = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    known = set(existing)
    merged = existing + [name for name in dict.fromkeys(names) if name not in known]
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a reader never sees a half-written list.
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(f"{name}\n" for name in merged))
    os.replace(temporary, path)
