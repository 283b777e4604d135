"""Plain-video reader: the shared H.264 sample and a JPEG folder, with points, boxes and masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED_DATA
from usam_video.config import DatasetConfig
from usam_video.datasets import Mp4Source, PlainVideoReader, open_dataset
from usam_video.errors import AnnotationError, DatasetError, DatasetNotFoundError, FrameReadError


def plain(root: Path, prompts: Path | None = None, **fields) -> PlainVideoReader:
    prompts = prompts if prompts is not None else root / "prompts.json"
    cfg = DatasetConfig(name="plain", format="video", root=root, prompts=prompts, **fields)
    return open_dataset(cfg)  # type: ignore[return-value]


def test_mp4_with_points_and_boxes(plain_root: Path) -> None:
    reader = plain(plain_root)
    assert reader.list_videos() == ["bedroom", "shapes"]
    ref = reader.video("bedroom")
    assert (ref.num_frames, ref.height, ref.width, ref.fps) == (200, 540, 960, 30.0)
    assert isinstance(reader.frames("bedroom"), Mp4Source)
    p1, p3, p2 = reader.prompts("bedroom")
    assert (p1.object_id, p1.frame_index, p3.object_id, p2.object_id, p2.frame_index) == (1, 0, 3, 2, 30)
    np.testing.assert_array_equal(p1.points, np.array([[410, 220], [300, 90]], np.float32))
    np.testing.assert_array_equal(p1.point_labels, np.array([1, 0], np.int32))
    assert p1.box is None and p1.mask is None
    assert p2.points is None and p2.box.tolist() == [120, 40, 380, 300]
    assert p3.points.tolist() == [[50.5, 60.0]] and p3.box.tolist() == [10, 20, 90, 100]
    assert reader.annotated_frames("bedroom") == [] and reader.ground_truth("bedroom", 0) is None


def test_jpeg_folder_numbered_from_one_with_masks(plain_root: Path) -> None:
    from tests.datasets.conftest import late_video

    video = late_video("shapes", num_frames=6, entry=3)
    reader = plain(plain_root)
    ref = reader.video("shapes")
    assert (ref.num_frames, ref.height, ref.width, ref.fps) == (6, 64, 96, None)
    first, late = reader.prompts("shapes")
    assert (first.object_id, first.frame_index, late.object_id, late.frame_index) == (1, 0, 3, 3)
    np.testing.assert_array_equal(first.mask, video.labels[0] == 1)  # from the PNG
    np.testing.assert_array_equal(late.mask, video.labels[3] == 3)  # from the RLE
    frame = reader.frames("shapes")[0]  # frame 0 is the file 00001.jpg
    expected = np.asarray(Image.open(plain_root / "shapes" / "00001.jpg").convert("RGB"))
    np.testing.assert_array_equal(frame, expected)


def test_root_may_be_one_mp4(tmp_path: Path) -> None:
    prompts = tmp_path / "p.json"
    prompts.write_text(
        json.dumps({"videos": {"bedroom": {"objects": [{"id": 7, "frame": 199, "box": [0, 0, 9, 9]}]}}})
    )
    reader = plain(SHARED_DATA / "videos" / "bedroom.mp4", prompts)
    assert reader.list_videos() == ["bedroom"]
    assert reader.prompts("bedroom")[0].frame_index == 199
    with pytest.raises(DatasetNotFoundError, match="expected video 'other' to be this file"):
        reader.video("other")


# --------------------------------------------------------------------------- bad prompt files


def _with_objects(source: Path, out: Path, objects: list, video: str = "shapes") -> Path:
    """A copy of prompt file ``source`` at ``out/edited.json`` with ``video``'s objects replaced."""
    data = json.loads(source.read_text())
    data["videos"][video] = {"objects": objects}
    path = out / "edited.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        (
            [{"id": 1, "frame": 6, "points": [[1, 2]], "labels": [1]}],
            r"\(id 1\): expected 'frame' in 0..5 .* got 6",
        ),
        ([{"id": 1, "frame": -1, "box": [0, 0, 5, 5]}], r"expected 'frame' in 0..5 .* got -1"),
        (
            [{"id": 1, "frame": 0, "mask": {"size": [96, 64], "counts": "PPYo1"}}],
            r"expected an RLE of size \[64, 96\] .* got \[96, 64\]",
        ),
        (
            [{"id": 1, "frame": 0, "mask": {"size": [64, 96], "counts": "!!"}}],
            "expected a decodable COCO RLE",
        ),
        ([{"id": 1, "frame": 0, "mask": {"size": [64, 96], "counts": [6144]}}], "expected a non-empty mask"),
        (
            [{"id": 1, "frame": 0, "mask": "masks/absent.png"}],
            r"expected a mask PNG at .*absent.png, found nothing",
        ),
        ([{"id": 1, "frame": 0, "mask": "masks/small.png"}], r"expected a mask of 64x96 \(HxW\), got 32x48"),
        ([{"id": 1, "frame": 0, "mask": "masks/rgb.png"}], "got colour mode 'RGB'"),
        ([{"id": 1, "frame": 0, "poinst": [[1, 2]]}], r"got unknown \['poinst'\]"),
        ([{"id": 1, "frame": 0, "points": [[1, 2]]}], "'points' and 'labels' together"),
        (
            [{"id": 1, "frame": 0, "points": [[1, 2]], "labels": [2]}],
            r"expected 'labels' as 1 values of 1 \(positive\) or 0",
        ),
        (
            [{"id": 1, "frame": 0, "points": [[1, 2, 3]], "labels": [1]}],
            r"expected 'points' as \[\[x, y\], ...\]",
        ),
        (
            [{"id": 1, "frame": 0, "points": [[100, 2]], "labels": [1]}],
            r"expected points inside the 96x64 \(WxH\) frame",
        ),
        ([{"id": 1, "frame": 0, "box": [50, 0, 10, 10]}], r"expected a box .* got \[50.0, 0.0, 10.0, 10.0\]"),
        ([{"id": 1, "frame": 0, "box": [0, 0, 10, True]}], r"expected 'box' as \[x0, y0, x1, y1\]"),
        ([{"id": 1, "frame": 0, "mask": "masks/shapes_1.png", "box": [0, 0, 5, 5]}], "expected a mask alone"),
        ([{"id": 1, "frame": 0}], "expected 'mask', 'points' .* or 'box', got none"),
        ([{"id": "a", "frame": 0, "box": [0, 0, 5, 5]}], "expected 'id' a non-negative integer, got 'a'"),
        (
            [{"id": 1, "frame": 0, "box": [0, 0, 5, 5]}, {"id": 1, "frame": 2, "box": [0, 0, 5, 5]}],
            "got id 1 twice",
        ),
        ([], "expected at least one object"),
    ],
)
def test_bad_object_entries(plain_root: Path, tmp_path: Path, objects: list, message: str) -> None:
    root = tmp_path / "plain"
    shutil.copytree(plain_root / "shapes", root / "shapes")
    shutil.copytree(plain_root / "masks", root / "masks")
    shutil.copy(plain_root / "prompts.json", root)
    Image.new("L", (48, 32), 255).save(root / "masks" / "small.png")
    Image.new("RGB", (96, 64), (255, 0, 0)).save(root / "masks" / "rgb.png")
    prompts = _with_objects(root / "prompts.json", root, objects)
    reader = plain(root, prompts, videos=["shapes"])
    with pytest.raises(AnnotationError, match=message) as info:
        reader.prompts("shapes")
    assert "edited.json" in str(info.value) and "'shapes'" in str(info.value)


def test_bad_entries_fail_only_their_video(plain_root: Path, tmp_path: Path) -> None:
    prompts = _with_objects(
        plain_root / "prompts.json", tmp_path, [{"id": 1, "frame": 99, "box": [0, 0, 5, 5]}]
    )
    reader = plain(plain_root, prompts)
    assert reader.list_videos() == ["bedroom", "shapes"]
    with pytest.raises(AnnotationError, match=r"edited.json: video 'shapes' object #0 \(id 1\)"):
        reader.prompts("shapes")
    assert len(reader.prompts("bedroom")) == 3  # the other video of the run still completes


def test_video_sources(plain_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "plain"
    shutil.copytree(plain_root / "shapes", root / "shapes")
    (root / "prompts.json").write_text(
        json.dumps({"videos": {"shapes": {"objects": []}, "ghost": {"objects": []}}})
    )
    reader = plain(root)
    with pytest.raises(DatasetNotFoundError, match=r"expected ghost.mp4 or a folder ghost/ .* video 'ghost'"):
        reader.video("ghost")
    shutil.copy(SHARED_DATA / "videos" / "bedroom.mp4", root / "shapes.mp4")
    with pytest.raises(DatasetError, match="got both shapes.mp4 and shapes/"):
        plain(root).video("shapes")
    (root / "shapes.mp4").unlink()
    (root / "shapes" / "00003.jpg").unlink()
    with pytest.raises(
        FrameReadError, match=r"expected consecutive frames 00001.jpg..00006.jpg .* missing 00003.jpg"
    ):
        plain(root).video("shapes")
    (root / "broken.mp4").write_bytes((SHARED_DATA / "videos" / "bedroom.mp4").read_bytes()[:100_000])
    with pytest.raises(FrameReadError, match="broken.mp4: expected a readable video file"):
        plain(root).video("broken")


def test_bad_prompt_file(tmp_path: Path, plain_root: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="absent.json: expected the JSON prompt file"):
        plain(plain_root, tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(AnnotationError, match="bad.json: expected a readable JSON prompt file"):
        plain(plain_root, bad).list_videos()
    bad.write_text('{"bedroom": []}')
    with pytest.raises(AnnotationError, match=r"bad.json: expected \{'videos'"):
        plain(plain_root, bad).prompts("bedroom")
    bad.write_text('{"videos": {"shapes": {"objects": []}}}')
    with pytest.raises(AnnotationError, match="video 'bedroom': expected an entry under 'videos'"):
        plain(plain_root, bad).prompts("bedroom")
    with pytest.raises(DatasetNotFoundError, match="expected a folder of videos or an mp4 file"):
        plain(tmp_path / "nothing", bad)
