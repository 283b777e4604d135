"""Frames decoded and resized ahead of the model on a bounded pool (issue #17): the model input
on the CPU is bit-identical to the synchronous path, for JPEG and mp4 sources alike."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from usam_video.datasets.base import FrameSource, JpegFolderSource
from usam_video.datasets.mp4_writer import write_mjpeg_mp4
from usam_video.datasets.sources import Mp4Source
from usam_video.engine.predictor import Sam2Frames, preprocess_frame
from usam_video.errors import FrameReadError


def _frames(n: int, h: int = 72, w: int = 100) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def jpeg_paths(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("jpegs")
    paths = []
    for i, frame in enumerate(_frames(12)):
        paths.append(root / f"{i:05d}.jpg")
        Image.fromarray(frame).save(paths[-1], quality=90)
    return paths


@pytest.fixture(scope="module")
def mp4_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mp4") / "clip.mp4"
    write_mjpeg_mp4(path, _frames(12), quality=90)
    return path


def _sources(jpeg_paths: list[Path], mp4_path: Path) -> dict[str, FrameSource]:
    return {"jpeg": JpegFolderSource(jpeg_paths, 72, 100), "mp4": Mp4Source(mp4_path)}


@pytest.mark.parametrize("kind", ["jpeg", "mp4"])
def test_prefetched_input_is_bit_identical(kind: str, jpeg_paths, mp4_path) -> None:
    source = _sources(jpeg_paths, mp4_path)[kind]
    reference = _sources(jpeg_paths, mp4_path)[kind]
    frames = Sam2Frames(source, 64, workers=2, ahead=3)
    # forward, a repeat (sam2 reads a prompt frame twice), a jump back, forward again
    for i in [0, 0, 1, 2, 3, 7, 8, 2, 3, 11]:
        expected = preprocess_frame(reference[i], 64)
        got = frames[i]
        assert got.dtype == torch.float32 and got.shape == (3, 64, 64)
        assert torch.equal(got, expected), f"{kind} frame {i}"
    frames.close()


class _Recording(FrameSource):
    """A thread-unsafe source that records overlapping reads and which frames were decoded."""

    def __init__(self, n: int, delay: float = 0.01):
        self.height, self.width, self._n, self._delay = 8, 8, n, delay
        self.decoded: list[int] = []
        self.overlaps = 0
        self._busy = False

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> np.ndarray:
        if self._busy:
            self.overlaps += 1
        self._busy = True
        time.sleep(self._delay)
        self.decoded.append(index)
        self._busy = False
        if index == 5:
            raise FrameReadError("frame 5: expected a readable frame, got garbage")
        return np.full((8, 8, 3), index, np.uint8)


def test_unsafe_source_is_read_one_at_a_time_and_ahead_is_bounded() -> None:
    source = _Recording(20)
    frames = Sam2Frames(source, 8, workers=3, ahead=2)
    frames[0]
    time.sleep(0.1)  # let the pool run: it may decode frames 1 and 2, never further
    assert sorted(source.decoded) == [0, 1, 2]
    frames[1], frames[2], frames[3]
    assert source.overlaps == 0
    # a read error surfaces on the frame that failed, not earlier
    frames[4]
    with pytest.raises(FrameReadError, match="frame 5"):
        frames[5]
    frames[6]
    frames.close()
    assert source.overlaps == 0


def test_concurrent_source_decodes_on_several_threads(jpeg_paths) -> None:
    seen: set[str] = set()
    source = JpegFolderSource(jpeg_paths, 72, 100)
    read_resized = source.read_resized

    def spy(index: int, image_size: int) -> np.ndarray:
        seen.add(threading.current_thread().name)
        time.sleep(0.02)
        return read_resized(index, image_size)

    source.read_resized = spy  # type: ignore[method-assign]
    frames = Sam2Frames(source, 32, workers=3, ahead=4)
    for i in range(len(source)):
        frames[i]
    frames.close()
    assert len({name for name in seen if name.startswith("usam-frames")}) >= 2


def test_close_stops_the_pool(jpeg_paths) -> None:
    before = {t.name for t in threading.enumerate()}
    frames = Sam2Frames(JpegFolderSource(jpeg_paths, 72, 100), 32, workers=2, ahead=2)
    frames[0]
    frames.close()
    time.sleep(0.05)
    after = {t.name for t in threading.enumerate() if t.name.startswith("usam-frames")}
    assert after <= before


def test_normalisation_table_is_sam2s_arithmetic() -> None:
    """Every byte value of every channel normalises as sam2's loader computes it (v / 255 in
    float64, then float32, minus mean, over std), bit for bit."""
    from usam_video.engine.predictor import normalise_frame

    values = np.arange(256, dtype=np.uint8)
    image = np.stack([np.roll(values, 85 * c) for c in range(3)], axis=-1).reshape(16, 16, 3)
    expected = torch.from_numpy(image / 255.0).permute(2, 0, 1).to(torch.float32)
    expected -= torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32)[:, None, None]
    expected /= torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32)[:, None, None]
    got = normalise_frame(image)
    assert got.dtype == torch.float32 and got.shape == (3, 16, 16)
    assert torch.equal(got, expected)
