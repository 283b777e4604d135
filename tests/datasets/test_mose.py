"""MOSE reader on generated train (every frame) and valid (first frame) splits, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.datasets.conftest import first_frame_of
from usam_video.config import DatasetConfig, load_dataset_config
from usam_video.datasets import MoseReader, open_dataset
from usam_video.datasets.synthetic import SyntheticVideo
from usam_video.errors import AnnotationError, ConfigError, DatasetError, DatasetNotFoundError, FrameReadError
from usam_video.palette import VOID_INDEX, write_palette_png

VIDEO = "0a1b2c3d"


def mose(root: Path, split: str = "train", **fields) -> MoseReader:
    return open_dataset(DatasetConfig(name="mose", format="mose", root=root, split=split, **fields))  # type: ignore[return-value]


def _copy(mose_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "mose"
    shutil.copytree(mose_root, root)
    return root


def test_train_split_late_object(mose_root: Path, mose_videos: list[SyntheticVideo]) -> None:
    reader = mose(mose_root)
    assert reader.list_videos() == ["0a1b2c3d", "deadbeef"]
    assert reader.meta_path == mose_root / "meta_train.json"
    video = mose_videos[0]
    ref = reader.video(VIDEO)
    assert (ref.num_frames, ref.height, ref.width, ref.fps) == (10, 64, 96, None)
    assert reader.annotated_frames(VIDEO) == list(range(10))
    prompts = reader.prompts(VIDEO)
    entry = first_frame_of(video, 3)
    assert entry == 4
    assert [(p.frame_index, p.object_id) for p in prompts] == [(0, 1), (0, 2), (entry, 3)]
    np.testing.assert_array_equal(prompts[2].mask, video.labels[entry] == 3)
    for t in range(entry):  # frames before the entry hold no mask for object 3
        assert 3 not in reader.ground_truth(VIDEO, t).object_ids
    gt = reader.ground_truth(VIDEO, 7)
    for obj in gt.object_ids:
        np.testing.assert_array_equal(gt.mask_of(obj), video.labels[7] == obj)


def test_valid_split_first_frame_only(mose_root: Path) -> None:
    reader = mose(mose_root, "valid")
    assert reader.list_videos() == ["c0ffee00"]
    assert reader.annotated_frames("c0ffee00") == [0]
    assert reader.ground_truth("c0ffee00", 1) is None
    assert [p.object_id for p in reader.prompts("c0ffee00")] == [1, 2]
    assert mose(mose_root, videos=["deadbeef"]).list_videos() == ["deadbeef"]


def test_void_and_meta_inside_split_folder(mose_root: Path, tmp_path: Path) -> None:
    root = _copy(mose_root, tmp_path)
    (root / "meta_train.json").rename(root / "train" / "meta_train.json")
    png = root / "train" / "Annotations" / VIDEO / "00002.png"
    labels = np.array(Image.open(png))
    labels[:3, :3] = VOID_INDEX
    write_palette_png(png, labels)
    reader = mose(root)
    assert reader.meta_path == root / "train" / "meta_train.json"
    gt = reader.ground_truth(VIDEO, 2)
    assert gt.void is not None and gt.void[:3, :3].all() and not gt.masks[:, :3, :3].any()
    (root / "train" / "meta_train.json").unlink()
    assert mose(root).meta_path is None and len(mose(root).prompts(VIDEO)) == 3  # meta is optional


def _set_meta(root: Path, edit) -> None:
    path = root / "meta_train.json"
    meta = json.loads(path.read_text())
    edit(meta["videos"])
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("edit", "call", "message"),
    [
        (
            lambda v: v[VIDEO].__setitem__("length", 11),
            "video",
            r"video '0a1b2c3d': expected length 10 .* got 11",
        ),
        (lambda v: v[VIDEO].__setitem__("width", 128), "video", r"expected width 96 .* got 128"),
        (lambda v: v.pop(VIDEO), "video", r"expected an entry for video '0a1b2c3d'.*got none"),
        (lambda v: v[VIDEO]["objects"].pop("3"), "prompts", r"expected objects \[1, 2, 3\] .* got \[1, 2\]"),
    ],
    ids=["length", "width", "no-entry", "objects"],
)
def test_meta_disagrees_with_folders(mose_root: Path, tmp_path: Path, edit, call: str, message: str) -> None:
    root = _copy(mose_root, tmp_path)
    _set_meta(root, edit)
    reader = mose(root)
    with pytest.raises(DatasetError, match=message) as info:
        getattr(reader, call)(VIDEO)
    assert "meta_train.json" in str(info.value)
    assert reader.prompts("deadbeef")  # the other video still completes


def test_bad_meta_file(mose_root: Path, tmp_path: Path) -> None:
    root = _copy(mose_root, tmp_path)
    (root / "meta_train.json").write_text('{"video": {}}')
    with pytest.raises(DatasetError, match=r"meta_train.json: expected \{'videos'"):
        mose(root).video(VIDEO)


def test_png_of_wrong_size_or_mode(mose_root: Path, tmp_path: Path) -> None:
    root = _copy(mose_root, tmp_path)
    png = root / "train" / "Annotations" / VIDEO / "00003.png"
    write_palette_png(png, np.zeros((32, 48), np.uint8))
    with pytest.raises(
        AnnotationError, match=r"00003.png: expected a mask of 64x96 .* video '0a1b2c3d', got 32x48"
    ):
        mose(root).video(VIDEO)
    for mode in ("L", "RGB"):
        Image.new(mode, (96, 64)).save(png)
        with pytest.raises(
            AnnotationError, match=rf"00003.png: expected a palette \('P'\) PNG .* got colour mode '{mode}'"
        ):
            mose(root).prompts(VIDEO)
    assert mose(root).prompts("deadbeef")


def test_missing_jpeg_in_the_middle(mose_root: Path, tmp_path: Path) -> None:
    root = _copy(mose_root, tmp_path)
    (root / "train" / "JPEGImages" / VIDEO / "00005.jpg").unlink()
    with pytest.raises(FrameReadError, match=r"0a1b2c3d: expected consecutive .* missing 00005.jpg"):
        mose(root).frames(VIDEO)


def test_annotation_past_the_end_and_missing(mose_root: Path, tmp_path: Path) -> None:
    root = _copy(mose_root, tmp_path)
    ann = root / "train" / "Annotations" / VIDEO
    shutil.copy(ann / "00000.png", ann / "00010.png")
    with pytest.raises(AnnotationError, match=r"00010.png: expected annotations of frames 00000..00009"):
        mose(root).video(VIDEO)
    shutil.rmtree(ann)
    with pytest.raises(AnnotationError, match="expected the annotation folder of video '0a1b2c3d'"):
        mose(root).video(VIDEO)
    with pytest.raises(DatasetNotFoundError, match="no-such"):
        mose(root).video("no-such")


def test_empty_masks(mose_root: Path, tmp_path: Path) -> None:
    root = _copy(mose_root, tmp_path)
    for png in (root / "train" / "Annotations" / VIDEO).iterdir():
        write_palette_png(png, np.zeros((64, 96), np.uint8))
    (root / "meta_train.json").unlink()
    with pytest.raises(AnnotationError, match="expected at least one object"):
        mose(root).prompts(VIDEO)


def test_dataset_level_errors(tmp_path: Path, mose_root: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="expected a MOSE dataset root"):
        mose(tmp_path / "absent")
    with pytest.raises(DatasetError, match="expected a MOSE split folder"):
        mose(mose_root, "test")
    path = tmp_path / "mose.yaml"
    path.write_text("name: m\nformat: mose\nroot: .\n")
    with pytest.raises(ConfigError, match="needs 'split'"):
        load_dataset_config(path)
