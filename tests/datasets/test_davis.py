import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from usam_video.config import DatasetConfig
from usam_video.datasets import DavisReader, open_dataset
from usam_video.errors import AnnotationError, DatasetError, DatasetNotFoundError, FrameReadError
from usam_video.palette import VOID_INDEX, read_palette_png, write_palette_png


def reader(root: Path, **kw) -> DavisReader:
    return open_dataset(DatasetConfig(name="davis", root=root, **kw))  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("video", "frames", "objects", "annotated_last"),
    [
        ("blackswan", 50, [1], True),
        ("car-shadow", 40, [1], True),
        ("bmx-trees", 80, [1, 2], False),
        ("tennis", 2, [1, 2], True),
    ],
)
def test_shared_samples(
    davis_root: Path, video: str, frames: int, objects: list[int], annotated_last: bool
) -> None:
    ds = reader(davis_root)
    ref = ds.video(video)
    assert (ref.num_frames, ref.height, ref.width) == (frames, 480, 854)
    prompts = ds.prompts(video)
    assert [p.object_id for p in prompts] == objects
    for p in prompts:
        assert p.frame_index == 0 and p.mask.dtype == bool and p.mask.shape == (480, 854) and p.mask.any()
    source = ds.frames(video)
    last = source[frames - 1]
    assert last.shape == (480, 854, 3) and last.dtype == np.uint8
    assert (ds.ground_truth(video, frames - 1) is not None) == annotated_last
    assert ds.annotated_frames(video) == (list(range(frames)) if annotated_last else [0])
    gt = ds.ground_truth(video, 0)
    assert gt is not None and gt.object_ids == tuple(objects) and gt.masks.shape == (len(objects), 480, 854)


def test_split_list_and_all_videos(davis_root: Path) -> None:
    assert set(reader(davis_root).list_videos()) >= {"blackswan", "car-shadow", "bmx-trees", "tennis"}
    val = reader(davis_root, split="val").list_videos()
    listed = (davis_root / "ImageSets/2017/val.txt").read_text().split()
    assert val == listed


def test_void_pixels_are_not_object(davis_root: Path) -> None:
    ds = reader(davis_root)
    labels = read_palette_png(davis_root / "Annotations/480p/tennis/00000.png")
    void = labels == VOID_INDEX
    assert void.any()
    for prompt in ds.prompts("tennis"):
        assert not (prompt.mask & void).any()
    union = np.logical_or.reduce([p.mask for p in ds.prompts("tennis")])
    assert union.sum() == np.isin(labels, [1, 2]).sum()
    gt = ds.ground_truth("tennis", 0)
    assert gt is not None and gt.void is not None and (gt.void == void).all()
    assert not (gt.masks & void).any()


def test_frames_are_lazy_and_cached(davis_root: Path) -> None:
    source = reader(davis_root).frames("blackswan")
    a = source[3]
    assert source[3] is a  # served from the small cache, not decoded twice
    expected = np.asarray(Image.open(davis_root / "JPEGImages/480p/blackswan/00003.jpg").convert("RGB"))
    np.testing.assert_array_equal(a, expected)
    with pytest.raises(IndexError):
        source[50]


def _copy_video(davis_root: Path, tmp_path: Path, video: str = "car-shadow") -> Path:
    root = tmp_path / "davis"
    for kind in ("JPEGImages", "Annotations"):
        shutil.copytree(davis_root / kind / "480p" / video, root / kind / "480p" / video)
    return root


def test_not_a_davis_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="found nothing"):
        reader(tmp_path / "absent")
    (tmp_path / "something").mkdir()
    with pytest.raises(DatasetError, match="JPEGImages/480p"):
        reader(tmp_path)


def test_missing_frame_in_the_middle(davis_root: Path, tmp_path: Path) -> None:
    root = _copy_video(davis_root, tmp_path)
    (root / "JPEGImages/480p/car-shadow/00007.jpg").unlink()
    with pytest.raises(FrameReadError, match="00007.jpg") as info:
        reader(root).video("car-shadow")
    assert "car-shadow" in str(info.value)


def test_first_frame_png_of_wrong_size(davis_root: Path, tmp_path: Path) -> None:
    root = _copy_video(davis_root, tmp_path)
    write_palette_png(root / "Annotations/480p/car-shadow/00000.png", np.zeros((240, 427), np.uint8))
    with pytest.raises(AnnotationError, match=r"00000.png: expected a mask of 480x854 .* got 240x427"):
        reader(root).prompts("car-shadow")


def test_first_frame_png_missing_or_rgb_or_empty(davis_root: Path, tmp_path: Path) -> None:
    root = _copy_video(davis_root, tmp_path)
    png = root / "Annotations/480p/car-shadow/00000.png"
    Image.new("RGB", (854, 480)).save(png)
    with pytest.raises(AnnotationError, match="colour mode 'RGB'"):
        reader(root).prompts("car-shadow")
    write_palette_png(png, np.zeros((480, 854), np.uint8))
    with pytest.raises(AnnotationError, match="at least one object"):
        reader(root).prompts("car-shadow")
    png.unlink()
    with pytest.raises(AnnotationError, match="first-frame annotation"):
        reader(root).video("car-shadow")


def test_frame_of_wrong_size_mid_video(davis_root: Path, tmp_path: Path) -> None:
    root = _copy_video(davis_root, tmp_path)
    Image.new("RGB", (100, 50)).save(root / "JPEGImages/480p/car-shadow/00005.jpg")
    with pytest.raises(FrameReadError, match=r"00005.jpg: expected a frame of 480x854 .* got 50x100"):
        reader(root).video("car-shadow")  # caught before any frame is decoded


def test_truncated_frame_fails_when_decoded(davis_root: Path, tmp_path: Path) -> None:
    root = _copy_video(davis_root, tmp_path)
    jpg = root / "JPEGImages/480p/car-shadow/00005.jpg"
    jpg.write_bytes(jpg.read_bytes()[:2000])
    source = reader(root).frames("car-shadow")
    with pytest.raises(FrameReadError, match="00005.jpg: expected a readable JPEG"):
        source[5]


def test_unknown_video_and_split(davis_root: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no-such-video"):
        reader(davis_root).video("no-such-video")
    with pytest.raises(DatasetNotFoundError, match="nosplit.txt"):
        reader(davis_root, split="nosplit").list_videos()
