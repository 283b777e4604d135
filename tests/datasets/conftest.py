"""Generated datasets in the MOSE, SA-V and plain-video layouts, written once per session.

Session fixtures are read-only by convention: a test that breaks a file copies the dataset
into its own ``tmp_path`` first (see the ``copy_*`` helpers in the test modules).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.conftest import SHARED_DATA
from usam_video.datasets.mp4_writer import write_mjpeg_mp4
from usam_video.datasets.synthetic import (
    SyntheticVideo,
    SyntheticVideoSpec,
    render_video,
    write_mose_dataset,
    write_sav_frames_dataset,
    write_sav_video,
)

# pycocotools' decode passes copy=False to numpy 2 (a DeprecationWarning per decoded RLE); it
# is pycocotools' own issue and would bury real warnings of this folder.
_PYCOCOTOOLS_COPY = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/datasets/" in item.nodeid:
            item.add_marker(pytest.mark.filterwarnings(_PYCOCOTOOLS_COPY))


#: Geometry of the real SA-V sample sav_000001 (its mp4 is not shipped): H, W, frames.
SAV_HEIGHT, SAV_WIDTH, SAV_FRAMES = 848, 480, 483
#: The frame index is written into each stand-in frame as this many black/white blocks.
CODE_BITS = 9
_BLOCK, _PITCH = 40, 50


def code_frame(index: int, height: int, width: int) -> np.ndarray:
    """``uint8`` ``(H, W, 3)`` grey frame carrying ``index`` as 9 large binary blocks.

    Large flat blocks survive low-quality JPEG, so the index can be read back after decoding
    to prove which video frame a reader returned.
    """
    frame = np.full((height, width, 3), 128, dtype=np.uint8)
    for bit in range(CODE_BITS):
        x0 = 10 + bit * _PITCH
        frame[10 : 10 + _BLOCK, x0 : x0 + _BLOCK] = 255 if (index >> bit) & 1 else 0
    return frame


def read_code(frame: np.ndarray) -> int:
    """Inverse of :func:`code_frame` on a decoded frame."""
    bits = [frame[10 + _BLOCK // 2, 10 + bit * _PITCH + _BLOCK // 2].mean() > 128 for bit in range(CODE_BITS)]
    return sum(1 << bit for bit, on in enumerate(bits) if on)


def coded_frames(count: int, height: int, width: int) -> Iterator[np.ndarray]:
    for index in range(count):
        yield code_frame(index, height, width)


@pytest.fixture(scope="session")
def sav_json_dir() -> Path:
    folder = SHARED_DATA / "sav"
    if not (folder / "sav_000001_manual.json").is_file():
        pytest.fail(f"the shared SA-V sample is missing at {folder} (set USAM_SHARED_DATA)")
    return folder


@pytest.fixture(scope="session")
def sav_standin_mp4(tmp_path_factory) -> Path:
    """A 483-frame 848x480 (HxW) 24 fps MJPEG mp4 whose frames carry their own index."""
    path = tmp_path_factory.mktemp("sav-standin") / "sav_000001.mp4"
    write_mjpeg_mp4(path, coded_frames(SAV_FRAMES, SAV_HEIGHT, SAV_WIDTH), fps=24.0, quality=30)
    return path


@pytest.fixture(scope="session")
def sav_root(tmp_path_factory, sav_json_dir: Path, sav_standin_mp4: Path) -> Path:
    """SA-V train layout: the real sav_000001 JSONs beside the stand-in mp4."""
    root = tmp_path_factory.mktemp("sav")
    for source in ("manual", "auto"):
        shutil.copy(sav_json_dir / f"sav_000001_{source}.json", root)
    shutil.copy(sav_standin_mp4, root / "sav_000001.mp4")
    return root


def late_video(name: str, num_frames: int = 10, entry: int = 4, seed: int = 3) -> SyntheticVideo:
    """A small rendered video whose object 3 enters at frame ``entry`` (objects 1, 2 at 0)."""
    spec = SyntheticVideoSpec(name, num_frames=num_frames, height=64, width=96, num_objects=3, seed=seed)
    return render_video(spec, entry_frames={3: entry})


def first_frame_of(video: SyntheticVideo, object_id: int, step: int = 1) -> int:
    """First frame (multiple of ``step``) on which ``object_id`` is visible in the labels."""
    return next(t for t in range(0, len(video.labels), step) if (video.labels[t] == object_id).any())


@pytest.fixture(scope="session")
def mose_videos() -> list[SyntheticVideo]:
    return [late_video("0a1b2c3d"), late_video("deadbeef", num_frames=6, entry=2, seed=5)]


@pytest.fixture(scope="session")
def mose_root(tmp_path_factory, mose_videos: list[SyntheticVideo]) -> Path:
    """MOSE layout: ``train`` (every frame annotated) and ``valid`` (first frame only)."""
    root = tmp_path_factory.mktemp("mose")
    write_mose_dataset(root, mose_videos, split="train")
    write_mose_dataset(
        root, [render_video(SyntheticVideoSpec("c0ffee00", 5, 64, 96, 2, seed=9))], "valid", False
    )
    return root


@pytest.fixture(scope="session")
def sav_frames_video() -> SyntheticVideo:
    return late_video("sav_900001", num_frames=13, entry=5, seed=11)


@pytest.fixture(scope="session")
def sav_frames_root(tmp_path_factory, sav_frames_video: SyntheticVideo) -> Path:
    """SA-V val layout: JPEGImages_24fps, Annotations_6fps every 4th frame, sav_val.txt."""
    root = tmp_path_factory.mktemp("sav-val")
    other = render_video(SyntheticVideoSpec("sav_900002", 9, 64, 96, 1, seed=2))
    write_sav_frames_dataset(root, [sav_frames_video, other], split="val")
    return root


@pytest.fixture(scope="session")
def sav_generated_root(tmp_path_factory) -> Path:
    """SA-V train layout from a rendered video (mp4 + manual and auto JSON)."""
    root = tmp_path_factory.mktemp("sav-gen")
    video = late_video("sav_800001", num_frames=17, entry=6, seed=4)
    write_sav_video(root, video, source="manual")
    write_sav_video(root, video, source="auto", write_mp4=False)
    return root


@pytest.fixture(scope="session")
def plain_root(tmp_path_factory) -> Path:
    """Plain-video layout: the shared bedroom.mp4, a JPEG folder numbered from 1, prompts.json."""
    root = tmp_path_factory.mktemp("plain")
    bedroom = SHARED_DATA / "videos" / "bedroom.mp4"
    if not bedroom.is_file():
        pytest.fail(f"the shared video sample is missing at {bedroom} (set USAM_SHARED_DATA)")
    shutil.copy(bedroom, root / "bedroom.mp4")
    folder = root / "shapes"
    folder.mkdir()
    video = late_video("shapes", num_frames=6, entry=3)
    for t, frame in enumerate(video.frames):
        Image.fromarray(frame).save(folder / f"{t + 1:05d}.jpg", quality=90)  # ffmpeg numbers from 1
    (root / "masks").mkdir()
    Image.fromarray((video.labels[0] == 1).astype(np.uint8) * 255, mode="L").save(
        root / "masks" / "shapes_1.png"
    )
    rle = mask_utils.encode(np.asfortranarray((video.labels[3] == 3).astype(np.uint8)))
    prompts = {
        "videos": {
            "bedroom": {
                "objects": [
                    {"id": 2, "frame": 30, "box": [120, 40, 380, 300]},
                    {"id": 1, "frame": 0, "points": [[410, 220], [300, 90]], "labels": [1, 0]},
                    {"id": 3, "frame": 0, "points": [[50.5, 60]], "labels": [1], "box": [10, 20, 90, 100]},
                ]
            },
            "shapes": {
                "objects": [
                    {"id": 1, "frame": 0, "mask": "masks/shapes_1.png"},
                    {"id": 3, "frame": 3, "mask": {"size": [64, 96], "counts": rle["counts"].decode()}},
                ]
            },
        }
    }
    (root / "prompts.json").write_text(json.dumps(prompts))
    return root
