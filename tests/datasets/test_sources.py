"""Frame sources: Mp4Source on real H.264 and generated MJPEG, JPEG read-ahead, sequence checks."""

from __future__ import annotations

import time
from pathlib import Path

import decord
import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED_DATA
from tests.datasets.conftest import coded_frames, read_code
from usam_video.datasets import JpegFolderSource, Mp4Source
from usam_video.datasets.base import resize_frame
from usam_video.datasets.mp4_writer import write_mjpeg_mp4
from usam_video.datasets.sources import jpeg_frame_size, jpeg_sequence
from usam_video.errors import DatasetNotFoundError, FrameReadError, InputError

VIDEOS = SHARED_DATA / "videos"


@pytest.mark.parametrize(
    ("name", "length", "shape", "fps", "indices"),
    [
        # bedroom has one key frame (0), so every seek decodes from the start: keep them short.
        ("bedroom.mp4", 200, (540, 960, 3), 30.0, [0, 21, 22, 45, 44]),
        ("05_default_juggle.mp4", 247, (720, 1280, 3), 24.0, [10, 3]),
    ],
)
def test_real_h264_matches_decord(
    name: str, length: int, shape: tuple, fps: float, indices: list[int]
) -> None:
    path = VIDEOS / name
    if not path.is_file():
        pytest.fail(f"shared sample {path} is missing (set USAM_SHARED_DATA)")
    source = Mp4Source(path)
    assert len(source) == length and (source.height, source.width, 3) == shape
    assert source.fps == pytest.approx(fps, rel=1e-3)
    reference = decord.VideoReader(str(path), ctx=decord.cpu(0))
    for index in indices:  # forward, a jump, then backwards
        frame = source[index]
        assert frame.dtype == np.uint8 and frame.shape == shape
        np.testing.assert_array_equal(frame, reference[index].asnumpy())


def test_read_ahead_batches_and_bounds_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "coded.mp4"
    write_mjpeg_mp4(path, coded_frames(40, 64, 480), fps=24.0, quality=40)
    source = Mp4Source(path, read_ahead=4)
    calls: list[list[int]] = []
    decode = source._decode

    def counting(indices):
        calls.append(list(indices))
        return decode(indices)

    source._decode = counting  # type: ignore[method-assign]
    assert [read_code(source[i]) for i in range(1, 9)] == list(range(1, 9))
    assert calls == [[1, 2, 3, 4], [5, 6, 7, 8]]  # two batches for eight frames
    calls.clear()
    assert read_code(source[30]) == 30
    assert read_code(source[29]) == 29  # a step back reads a batch backwards
    assert read_code(source[27]) == 27 and read_code(source[25]) == 25
    assert calls == [[30, 31, 32, 33], [26, 27, 28, 29], [22, 23, 24, 25]]
    assert len(source._cache) <= 8


def test_mjpeg_writer_round_trip(tmp_path: Path) -> None:
    blocks = np.random.default_rng(0).integers(0, 256, (5, 12, 16, 3), dtype=np.uint8)
    frames = [b.repeat(8, axis=0).repeat(8, axis=1) for b in blocks]  # (96, 128, 3), JPEG-friendly
    for moov_last in (False, True):
        path = tmp_path / f"rt{moov_last}.mp4"
        assert write_mjpeg_mp4(path, frames, fps=23.976, quality=95, moov_last=moov_last) == 5
        source = Mp4Source(path)
        assert (len(source), source.height, source.width) == (5, 96, 128)
        assert source.fps == pytest.approx(23.976, abs=1e-3)
        assert np.abs(source[4].astype(int) - frames[4]).mean() < 8  # JPEG, not bit-exact
    with pytest.raises(InputError, match="at least one frame"):
        write_mjpeg_mp4(tmp_path / "none.mp4", [])
    with pytest.raises(InputError, match="frame 1"):
        write_mjpeg_mp4(tmp_path / "odd.mp4", [frames[0], frames[0][:50]])


@pytest.mark.parametrize("moov_last", [False, True])
def test_truncated_mp4_is_a_frame_read_error(tmp_path: Path, moov_last: bool) -> None:
    path = tmp_path / "clip.mp4"
    write_mjpeg_mp4(path, coded_frames(30, 64, 480), moov_last=moov_last)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameReadError, match=r"clip\.mp4: expected a readable video file") as info:
        Mp4Source(path)
    assert "truncated" in str(info.value)


def test_truncated_real_h264(tmp_path: Path) -> None:
    path = tmp_path / "bedroom.mp4"
    path.write_bytes((VIDEOS / "bedroom.mp4").read_bytes()[:500_000])
    with pytest.raises(FrameReadError, match="bedroom.mp4"):
        Mp4Source(path)


def test_not_a_video_and_missing(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a video" * 50)
    with pytest.raises(FrameReadError, match="junk.mp4"):
        Mp4Source(junk)
    with pytest.raises(DatasetNotFoundError, match="absent.mp4: expected a video file"):
        Mp4Source(tmp_path / "absent.mp4")


class _TensorLike:
    """What decord's torch bridge hands back: no ``asnumpy``, a ``numpy()`` method."""

    def __init__(self, native) -> None:
        self._array = native.asnumpy()

    def numpy(self) -> np.ndarray:
        return self._array


def test_torch_bridge_set_by_someone_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sam2 sets decord's bridge to torch process-wide; frames must stay numpy.

    The bridge function is replaced by a torch-like stand-in so the test needs no torch import
    (4 s on a small CI machine)."""
    path = tmp_path / "coded.mp4"
    write_mjpeg_mp4(path, coded_frames(5, 64, 480))
    monkeypatch.setattr(decord.video_reader, "bridge_out", _TensorLike)
    frame = Mp4Source(path)[3]
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and read_code(frame) == 3


def test_closed_source(tmp_path: Path) -> None:
    path = tmp_path / "coded.mp4"
    write_mjpeg_mp4(path, coded_frames(12, 64, 480))
    with Mp4Source(path) as source:
        source[0]
    with pytest.raises(FrameReadError, match="closed"):
        source[9]


# --------------------------------------------------------------------------- JPEG folders


def _jpeg_folder(folder: Path, count: int, start: int = 0, digits: int = 5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(coded_frames(count, 64, 480)):
        path = folder / f"{i + start:0{digits}d}.jpg"
        Image.fromarray(frame).save(path, quality=90)
        paths.append(path)
    return paths


def test_jpeg_read_ahead_both_directions(tmp_path: Path) -> None:
    paths = _jpeg_folder(tmp_path / "v", 12)
    source = JpegFolderSource(paths, 64, 480, read_ahead=3)
    assert read_code(source[0]) == 0
    assert sorted(source._pending) == [1, 2, 3]
    assert [read_code(source[i]) for i in range(1, 6)] == [1, 2, 3, 4, 5]
    assert read_code(source[10]) == 10 and sorted(source._pending) == [11]  # stale ones dropped
    assert read_code(source[9]) == 9 and sorted(source._pending) == [6, 7, 8]  # now backwards
    source.close()
    assert not source._pending


def test_jpeg_read_ahead_error_surfaces_on_its_frame(tmp_path: Path) -> None:
    paths = _jpeg_folder(tmp_path / "v", 6)
    paths[2].write_bytes(paths[2].read_bytes()[:300])
    source = JpegFolderSource(paths, 64, 480, read_ahead=2)
    source[0], source[1]  # frame 2 is being read ahead and fails there, silently for now
    time.sleep(0.05)
    with pytest.raises(FrameReadError, match="00002.jpg: expected a readable JPEG"):
        source[2]
    assert read_code(source[3]) == 3


def test_jpeg_sequence_rules(tmp_path: Path) -> None:
    strict = _jpeg_folder(tmp_path / "strict", 4)
    assert jpeg_sequence(tmp_path / "strict", "strict") == tuple(strict)
    assert jpeg_frame_size(strict, "strict") == (64, 480)
    loose = _jpeg_folder(tmp_path / "loose", 4, start=1, digits=3)
    with pytest.raises(FrameReadError, match="found none"):
        jpeg_sequence(tmp_path / "loose", "loose")  # 3 digits are not DAVIS names
    assert jpeg_sequence(tmp_path / "loose", "loose", strict_names=False) == tuple(loose)
    (tmp_path / "loose" / "0002.jpg").write_bytes(loose[1].read_bytes())
    with pytest.raises(FrameReadError, match="one file per frame number"):
        jpeg_sequence(tmp_path / "loose", "loose", strict_names=False)
    strict[2].unlink()
    with pytest.raises(
        FrameReadError, match=r"strict: expected consecutive .* video 'strict', missing 00002.jpg"
    ):
        jpeg_sequence(tmp_path / "strict", "strict")
    with pytest.raises(DatasetNotFoundError, match="video 'nope', found no folder"):
        jpeg_sequence(tmp_path / "nope", "nope")


def test_jpeg_read_resized_is_the_frame_resized(tmp_path: Path) -> None:
    """The prefetch path (decoded image straight to Pillow's resize) gives the pixels of the
    frame read and then resized, for RGB and for a grey JPEG (converted to RGB as sam2 does)."""
    paths = _jpeg_folder(tmp_path / "v", 3)
    grey = tmp_path / "v" / "00003.jpg"
    Image.fromarray(list(coded_frames(4, 64, 480))[3][:, :, 0]).save(grey, quality=90)
    source = JpegFolderSource([*paths, grey], 64, 480)
    for i in range(4):
        for size in (32, 256):
            got = source.read_resized(i, size)
            assert got.dtype == np.uint8 and got.shape == (size, size, 3)
            np.testing.assert_array_equal(got, resize_frame(source.read_frame(i), size))
    with pytest.raises(IndexError, match="frame 4 out of range"):
        source.read_resized(4, 32)


def test_jpeg_read_resized_errors_name_the_file(tmp_path: Path) -> None:
    paths = _jpeg_folder(tmp_path / "v", 4)
    paths[1].write_bytes(paths[1].read_bytes()[:300])  # header intact, pixels cut off
    paths[2].write_bytes(b"not a jpeg")
    Image.fromarray(next(coded_frames(1, 32, 480))).save(paths[3], quality=90)  # wrong size
    source = JpegFolderSource(paths, 64, 480)
    before = {p: p.read_bytes() for p in paths}
    with pytest.raises(FrameReadError, match="00001.jpg: expected a readable JPEG"):
        source.read_resized(1, 32)
    with pytest.raises(FrameReadError, match="00002.jpg: expected a readable JPEG"):
        source.read_resized(2, 32)
    with pytest.raises(FrameReadError, match=r"00003.jpg: expected a frame of 64x480 .* got 32x480"):
        source.read_resized(3, 32)
    with pytest.raises(FrameReadError, match=r"00003.jpg: expected a frame of 64x480 .* got 32x480"):
        source[3]
    assert {p: p.read_bytes() for p in paths} == before  # reading never writes
    assert source.read_resized(0, 32).shape == (32, 32, 3)


def test_mp4_read_resized_is_the_frame_resized(tmp_path: Path) -> None:
    path = tmp_path / "coded.mp4"
    write_mjpeg_mp4(path, coded_frames(4, 64, 480))
    with Mp4Source(path) as source:
        np.testing.assert_array_equal(source.read_resized(2, 48), resize_frame(source[2], 48))
