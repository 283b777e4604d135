"""Frames decoded and resized ahead of the model on a bounded pool (issue #17): the model input
on the CPU is bit-identical to the synchronous path, for JPEG and mp4 sources alike."""

import functools
import os
import threading
import time
from collections.abc import Callable
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


@pytest.mark.parametrize(("kind", "processes"), [("jpeg", True), ("jpeg", False), ("mp4", True)])
def test_prefetched_input_is_bit_identical(kind: str, processes: bool, jpeg_paths, mp4_path) -> None:
    """JPEG frames are decoded by worker processes (or threads), mp4 ones on threads always."""
    source = _sources(jpeg_paths, mp4_path)[kind]
    reference = _sources(jpeg_paths, mp4_path)[kind]
    frames = Sam2Frames(source, 64, workers=2, ahead=3, processes=processes)
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
    decode = source._decode

    def spy(index: int) -> np.ndarray:
        seen.add(threading.current_thread().name)
        time.sleep(0.02)
        return decode(index)

    source._decode = spy  # type: ignore[method-assign]
    frames = Sam2Frames(source, 32, workers=3, ahead=4, processes=False)
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


def _worker_pid_frame(parent_pid: int) -> np.ndarray:
    """A frame task (module level: it is pickled by name): 1 where it ran in another process."""
    return np.full((8, 8, 3), int(os.getpid() != parent_pid), np.uint8)


def _dying_frame() -> np.ndarray:
    os._exit(1)  # a worker killed mid-frame (out of memory, a signal)


class _TaskSource(_Recording):
    """A source whose frames a worker process can read (frame_task), as JPEG folders are."""

    def __init__(self, n: int, task: Callable[[], np.ndarray]):
        super().__init__(n, delay=0.0)
        self.task = task

    def frame_task(self, index: int) -> Callable[[], np.ndarray]:
        return self.task


def test_frames_with_a_task_are_decoded_in_another_process() -> None:
    source = _TaskSource(6, functools.partial(_worker_pid_frame, os.getpid()))
    frames = Sam2Frames(source, 8, workers=1, ahead=2, processes=True)
    expected = preprocess_frame(np.ones((8, 8, 3), np.uint8), 8)
    for i in range(6):
        assert torch.equal(frames[i], expected), f"frame {i} was not decoded by a worker process"
    frames.close()
    assert source.decoded == []  # the source's own (thread) path never ran


def test_a_bad_jpeg_read_by_a_worker_names_its_file(tmp_path: Path, jpeg_paths) -> None:
    paths = [tmp_path / f"{i:05d}.jpg" for i in range(3)]
    for path, original in zip(paths, jpeg_paths, strict=False):
        path.write_bytes(original.read_bytes())
    paths[2].write_bytes(b"not a jpeg")
    frames = Sam2Frames(JpegFolderSource(paths, 72, 100), 32, workers=1, ahead=2, processes=True)
    frames[0], frames[1]
    with pytest.raises(FrameReadError, match="00002.jpg: expected a readable JPEG frame"):
        frames[2]
    frames.close()


def test_a_dead_worker_sends_decoding_back_to_threads(monkeypatch) -> None:
    """A worker that dies (killed, out of memory) breaks the pool: the frame is decoded on a
    thread instead, and so is every later one, after one warning."""
    from usam_video.datasets.decode import DecodeProcesses

    monkeypatch.setattr(DecodeProcesses, "_pool", None)  # a pool of this test's own
    monkeypatch.setattr(DecodeProcesses, "_unavailable", None)
    source = _TaskSource(4, _dying_frame)
    frames = Sam2Frames(source, 8, workers=1, ahead=1, processes=True)
    for i in range(4):
        assert torch.equal(frames[i], preprocess_frame(np.full((8, 8, 3), i, np.uint8), 8))
    frames.close()
    assert sorted(set(source.decoded)) == [0, 1, 2, 3]  # on threads, by the source itself
    assert DecodeProcesses._unavailable is not None
    assert DecodeProcesses.submit(_dying_frame, 8, 1) is None


def test_processes_by_default_for_large_frames_only(jpeg_paths) -> None:
    """Tiny frames decode faster than a hand-over to a process costs; 480p ones do not."""
    from usam_video.engine.predictor import PROCESS_DECODE_MIN_PIXELS

    small = Sam2Frames(JpegFolderSource(jpeg_paths, 72, 100), 32)
    large = Sam2Frames(JpegFolderSource(jpeg_paths, 480, 854), 32)
    assert 72 * 100 < PROCESS_DECODE_MIN_PIXELS <= 480 * 854
    assert not small.processes and large.processes
    assert not Sam2Frames(JpegFolderSource(jpeg_paths, 480, 854), 32, ahead=0).processes  # no prefetch
    small.close(), large.close()
