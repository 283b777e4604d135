"""SA-V reader: the real sav_000001 masklets over a stand-in mp4, generated val/test folders,
the 4x frame mapping, late-entering objects, manual/auto/both, and every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.datasets.conftest import (
    SAV_FRAMES,
    SAV_HEIGHT,
    SAV_WIDTH,
    coded_frames,
    first_frame_of,
    read_code,
)
from usam_video.config import DatasetConfig
from usam_video.datasets import SavReader, open_dataset
from usam_video.datasets.mp4_writer import write_mjpeg_mp4
from usam_video.datasets.sav import ANNOTATION_STEP, AUTO_ID_OFFSET
from usam_video.datasets.synthetic import SyntheticVideo
from usam_video.errors import AnnotationError, DatasetError, DatasetNotFoundError, FrameReadError

VIDEO = "sav_000001"


def sav(root: Path, **fields) -> SavReader:
    return open_dataset(DatasetConfig(name="sav", format="sav", root=root, **fields))  # type: ignore[return-value]


def _json(root: Path, source: str = "manual") -> dict:
    return json.loads((root / f"{VIDEO}_{source}.json").read_text())


def _copy(sav_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "sav"
    shutil.copytree(sav_root, root)
    return root


# --------------------------------------------------------------------------- real sample


def test_real_sample_geometry_and_frame_mapping(sav_root: Path) -> None:
    reader = sav(sav_root)
    assert reader.list_videos() == [VIDEO]
    ref = reader.video(VIDEO)
    assert (ref.num_frames, ref.height, ref.width, ref.fps) == (SAV_FRAMES, SAV_HEIGHT, SAV_WIDTH, 24.0)
    annotated = reader.annotated_frames(VIDEO)
    assert annotated == list(range(0, SAV_FRAMES, ANNOTATION_STEP)) and len(annotated) == 121
    assert annotated[-1] == 480
    # The stand-in's frames carry their index: the frame a prompt names is that video frame.
    source = reader.frames(VIDEO)
    assert [read_code(source[t]) for t in (452, 480, 4)] == [452, 480, 4]


def test_real_sample_late_object_starts_at_its_own_frame(sav_root: Path) -> None:
    reader = sav(sav_root)
    data = _json(sav_root)
    prompts = reader.prompts(VIDEO)
    assert [(p.frame_index, p.object_id) for p in prompts] == [(0, 0), (0, 1), (0, 2), (0, 4), (452, 3)]
    late = prompts[-1]
    # masklet_first_appeared_frame counts annotated frames: 113 -> video frame 452.
    assert data["masklet_first_appeared_frame"][3] == 113 and late.frame_index == 4 * 113
    np.testing.assert_array_equal(late.mask, mask_utils.decode(data["masklet"][113][3]).astype(bool))
    assert not reader.ground_truth(VIDEO, 448).mask_of(3).any()  # annotated frame 112
    assert reader.ground_truth(VIDEO, 452).mask_of(3).any()
    for frame in (451, 453, 484, -4):
        assert reader.ground_truth(VIDEO, frame) is None


def test_real_sample_overlapping_masklets_are_kept(sav_root: Path) -> None:
    gt = sav(sav_root).ground_truth(VIDEO, 0)
    assert gt.object_ids == (0, 1, 2, 3, 4) and gt.masks.shape == (5, SAV_HEIGHT, SAV_WIDTH)
    assert (gt.masks[0] & gt.masks[1]).any()  # manual masklets 0 and 1 overlap on frame 0
    assert not gt.masks[3].any() and gt.void is None


@pytest.mark.parametrize(
    ("source", "ids"),
    [
        ("manual", list(range(5))),
        ("auto", list(range(9))),
        ("both", list(range(5)) + [AUTO_ID_OFFSET + j for j in range(9)]),
    ],
)
def test_annotation_source(sav_root: Path, source: str, ids: list[int]) -> None:
    reader = sav(sav_root, annotation_source=source)
    assert sorted(p.object_id for p in reader.prompts(VIDEO)) == ids
    gt = reader.ground_truth(VIDEO, 40)
    assert list(gt.object_ids) == ids
    if source == "both":
        auto = mask_utils.decode(_json(sav_root, "auto")["masklet"][10][2]).astype(bool)
        np.testing.assert_array_equal(gt.mask_of(AUTO_ID_OFFSET + 2), auto)


def test_null_entries_are_absent_objects(sav_root: Path, tmp_path: Path) -> None:
    root = _copy(sav_root, tmp_path)
    data = _json(root)
    for t in range(3):  # older files hold null where an object is absent
        data["masklet"][t][0] = None
    (root / f"{VIDEO}_manual.json").write_text(json.dumps(data))
    reader = sav(root)
    assert next(p for p in reader.prompts(VIDEO) if p.object_id == 0).frame_index == 12
    assert not reader.ground_truth(VIDEO, 8).mask_of(0).any()


# --------------------------------------------------------------------------- generated samples


def test_generated_mp4_layout_late_object(sav_generated_root: Path) -> None:
    reader = sav(sav_generated_root, annotation_source="both")
    video_id = "sav_800001"
    prompts = reader.prompts(video_id)
    # label 3 enters at frame 6 -> first annotated frame 8; masklet index 2 (+1000 for auto).
    assert [(p.frame_index, p.object_id) for p in prompts] == [
        (0, 0),
        (0, 1),
        (0, AUTO_ID_OFFSET),
        (0, AUTO_ID_OFFSET + 1),
        (8, 2),
        (8, AUTO_ID_OFFSET + 2),
    ]
    assert reader.annotated_frames(video_id) == [0, 4, 8, 12, 16]


def test_frames_layout(sav_frames_root: Path, sav_frames_video: SyntheticVideo) -> None:
    reader = sav(sav_frames_root, layout="frames", split="val")
    assert reader.list_videos() == ["sav_900001", "sav_900002"]
    ref = reader.video("sav_900001")
    assert (ref.num_frames, ref.height, ref.width, ref.fps) == (13, 64, 96, 24.0)
    assert reader.annotated_frames("sav_900001") == [0, 4, 8, 12]  # file names are video frames
    entry = first_frame_of(sav_frames_video, 3, step=4)
    prompts = reader.prompts("sav_900001")
    assert [(p.frame_index, p.object_id) for p in prompts] == [(0, 0), (0, 1), (entry, 2)]
    gt = reader.ground_truth("sav_900001", 8)
    np.testing.assert_array_equal(gt.mask_of(0), sav_frames_video.labels[8] == 1)
    assert reader.ground_truth("sav_900001", 5) is None
    assert sav(sav_frames_root, layout="frames").list_videos() == ["sav_900001", "sav_900002"]


# --------------------------------------------------------------------------- bad input


def _edit_manual(root: Path, edit) -> None:
    data = _json(root)
    edit(data)
    (root / f"{VIDEO}_manual.json").write_text(json.dumps(data))


def _drop_object_on_frame_7(data: dict) -> None:
    data["masklet"][7].pop()


def _transpose_rle(data: dict) -> None:
    data["masklet"][2][1]["size"] = [SAV_WIDTH, SAV_HEIGHT]


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda d: d.pop("masklet"), AnnotationError, r"expected a 'masklet' list .* got keys \["),
        (
            _drop_object_on_frame_7,
            AnnotationError,
            r"expected 5 objects on every annotated frame .* got 4 on annotated frame 7 \(video frame 28\)",
        ),
        (
            _transpose_rle,
            AnnotationError,
            r"expected RLE size \[848, 480\] of video 'sav_000001', got \[480, 848\] for masklet 1",
        ),
        (lambda d: d["masklet"][5].__setitem__(0, [1, 2]), AnnotationError, "expected a COCO RLE"),
        (
            lambda d: d["masklet"].extend(d["masklet"][:2]),
            AnnotationError,
            r"expected at most 121 annotated frames .* got 123",
        ),
    ],
    ids=["no-masklet", "ragged", "rle-size", "not-rle", "too-many-frames"],
)
def test_bad_json(sav_root: Path, tmp_path: Path, edit, error, message: str) -> None:
    root = _copy(sav_root, tmp_path)
    _edit_manual(root, edit)
    with pytest.raises(error, match=message) as info:
        sav(root).video(VIDEO)
    assert f"{VIDEO}_manual.json" in str(info.value) and VIDEO in str(info.value)


def test_unreadable_json_and_missing_files(sav_root: Path, tmp_path: Path) -> None:
    root = _copy(sav_root, tmp_path)
    (root / f"{VIDEO}_manual.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="manual.json: expected a readable JSON file"):
        sav(root).prompts(VIDEO)
    (root / f"{VIDEO}_manual.json").unlink()
    with pytest.raises(AnnotationError, match="manual.json: expected the masklet file of SA-V video"):
        sav(root).prompts(VIDEO)
    assert sav(root, annotation_source="auto").prompts(VIDEO)  # auto alone still works
    (root / f"{VIDEO}.mp4").unlink()
    assert sav(root, annotation_source="auto").list_videos() == [VIDEO]  # listed, fails alone
    with pytest.raises(DatasetNotFoundError, match=r"sav_000001.mp4: expected the video file"):
        sav(root, annotation_source="auto").video(VIDEO)


def test_video_shorter_than_its_masklets(sav_root: Path, tmp_path: Path) -> None:
    root = _copy(sav_root, tmp_path)
    write_mjpeg_mp4(root / f"{VIDEO}.mp4", coded_frames(100, SAV_HEIGHT, SAV_WIDTH), quality=20)
    with pytest.raises(
        AnnotationError, match=r"expected at most 25 annotated frames .* 100 frames .* got 121"
    ):
        sav(root).prompts(VIDEO)


def test_truncated_mp4_fails_alone(sav_root: Path, tmp_path: Path, sav_generated_root: Path) -> None:
    root = _copy(sav_root, tmp_path)
    for path in sav_generated_root.iterdir():
        shutil.copy(path, root)
    mp4 = root / f"{VIDEO}.mp4"
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 3])
    reader = sav(root)
    assert reader.list_videos() == [VIDEO, "sav_800001"]
    with pytest.raises(FrameReadError, match="sav_000001.mp4: expected a readable video file"):
        reader.prompts(VIDEO)
    assert reader.prompts("sav_800001")  # the other video of the run still completes


def _copy_frames(root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "sav-val"
    shutil.copytree(root, out)
    return out


def test_frames_layout_bad_inputs(sav_frames_root: Path, tmp_path: Path) -> None:
    root = _copy_frames(sav_frames_root, tmp_path)
    reader = sav(root, layout="frames")
    ann = root / "Annotations_6fps" / "sav_900001"
    Image.new("RGB", (96, 64)).save(ann / "001" / "00004.png")
    with pytest.raises(AnnotationError, match=r"001/00004.png: expected a binary mask PNG .* got mode 'RGB'"):
        reader.video("sav_900001")
    Image.new("L", (48, 32)).save(ann / "001" / "00004.png")
    with pytest.raises(AnnotationError, match=r"of 64x96 \(HxW\) .* got mode 'L' 32x48"):
        sav(root, layout="frames").video("sav_900001")
    (ann / "001" / "00004.png").unlink()
    with pytest.raises(
        AnnotationError, match=r"001: expected masks on the same frames as object 000 .* \[4\]"
    ):
        sav(root, layout="frames").video("sav_900001")
    assert sav(root, layout="frames").prompts("sav_900002")  # the other video is fine
    (root / "JPEGImages_24fps" / "sav_900002" / "00003.jpg").unlink()
    with pytest.raises(FrameReadError, match=r"sav_900002: expected consecutive .* missing 00003.jpg"):
        sav(root, layout="frames").video("sav_900002")


def test_frames_layout_missing_parts(sav_frames_root: Path, tmp_path: Path) -> None:
    root = _copy_frames(sav_frames_root, tmp_path)
    with pytest.raises(DatasetNotFoundError, match="sav_test.txt"):
        sav(root, layout="frames", split="test").list_videos()
    shutil.rmtree(root / "Annotations_6fps" / "sav_900002")
    with pytest.raises(AnnotationError, match="expected the per-object mask folders of video 'sav_900002'"):
        sav(root, layout="frames").prompts("sav_900002")
    shutil.rmtree(root / "Annotations_6fps")
    with pytest.raises(DatasetError, match="JPEGImages_24fps/ and Annotations_6fps/"):
        sav(root, layout="frames")
    with pytest.raises(DatasetNotFoundError, match="expected an SA-V dataset folder"):
        sav(tmp_path / "absent")


def test_undecodable_rle_fails_when_decoded(sav_root: Path, tmp_path: Path) -> None:
    root = _copy(sav_root, tmp_path)
    _edit_manual(root, lambda d: d["masklet"][0][2].__setitem__("counts", "!!"))
    reader = sav(root)
    reader.video(VIDEO)  # structure and sizes are fine
    with pytest.raises(
        AnnotationError, match=r"manual.json: expected a decodable COCO RLE for object 2 on annotated"
    ):
        reader.ground_truth(VIDEO, 0)
