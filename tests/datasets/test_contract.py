"""The DatasetReader contract, run against every reader on shared and generated samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from usam_video.config import DatasetConfig
from usam_video.datasets import DatasetReader, FrameSource, open_dataset
from usam_video.types import FrameAnnotation, VideoRef

# Each case: (reader factory over the session fixtures, video id, has ground truth).
Case = tuple[Callable[[pytest.FixtureRequest], DatasetReader], str, bool]


def _open(**fields) -> DatasetReader:
    return open_dataset(DatasetConfig(name="ds", **fields))


CASES: dict[str, Case] = {
    "davis": (lambda r: _open(root=r.getfixturevalue("davis_root")), "bmx-trees", True),
    "mose-train": (
        lambda r: _open(format="mose", root=r.getfixturevalue("mose_root"), split="train"),
        "0a1b2c3d",
        True,
    ),
    "mose-valid": (
        lambda r: _open(format="mose", root=r.getfixturevalue("mose_root"), split="valid"),
        "c0ffee00",
        True,
    ),
    "sav-mp4-real-manual": (
        lambda r: _open(format="sav", root=r.getfixturevalue("sav_root")),
        "sav_000001",
        True,
    ),
    "sav-mp4-real-both": (
        lambda r: _open(format="sav", root=r.getfixturevalue("sav_root"), annotation_source="both"),
        "sav_000001",
        True,
    ),
    "sav-mp4-generated-auto": (
        lambda r: _open(format="sav", root=r.getfixturevalue("sav_generated_root"), annotation_source="auto"),
        "sav_800001",
        True,
    ),
    "sav-frames": (
        lambda r: _open(
            format="sav", layout="frames", root=r.getfixturevalue("sav_frames_root"), split="val"
        ),
        "sav_900001",
        True,
    ),
    "video-mp4": (
        lambda r: _open(
            format="video",
            root=r.getfixturevalue("plain_root"),
            prompts=r.getfixturevalue("plain_root") / "prompts.json",
        ),
        "bedroom",
        False,
    ),
    "video-jpeg": (
        lambda r: _open(
            format="video",
            root=r.getfixturevalue("plain_root"),
            prompts=r.getfixturevalue("plain_root") / "prompts.json",
        ),
        "shapes",
        False,
    ),
}


@pytest.fixture(params=sorted(CASES), scope="class")
def case(request: pytest.FixtureRequest) -> tuple[DatasetReader, str, bool]:
    factory, video_id, has_gt = CASES[request.param]
    return factory(request), video_id, has_gt


class TestReaderContract:
    """What the pipeline relies on, whatever the format."""

    def test_lists_the_video(self, case) -> None:
        reader, video_id, _ = case
        videos = reader.list_videos()
        assert video_id in videos and videos == reader.list_videos()  # stable

    def test_video_ref(self, case) -> None:
        reader, video_id, _ = case
        ref = reader.video(video_id)
        assert isinstance(ref, VideoRef) and ref.video_id == video_id and ref.dataset == "ds"
        assert ref.num_frames > 0 and ref.height > 0 and ref.width > 0

    def test_frames_are_lazy_rgb_uint8(self, case) -> None:
        reader, video_id, _ = case
        ref = reader.video(video_id)
        source = reader.frames(video_id)
        assert isinstance(source, FrameSource)
        assert (len(source), source.height, source.width) == (ref.num_frames, ref.height, ref.width)
        for index in (ref.num_frames - 1, 0):
            frame = source[index]
            assert frame.dtype == np.uint8 and frame.shape == (ref.height, ref.width, 3)
        with pytest.raises(IndexError):
            source[ref.num_frames]
        source.close()

    def test_prompts_one_per_object_sorted(self, case) -> None:
        reader, video_id, _ = case
        ref = reader.video(video_id)
        prompts = reader.prompts(video_id)
        assert prompts
        keys = [(p.frame_index, p.object_id) for p in prompts]
        assert keys == sorted(keys)
        assert len({p.object_id for p in prompts}) == len(prompts)
        for p in prompts:
            assert 0 <= p.frame_index < ref.num_frames
            if p.mask is not None:
                assert p.mask.dtype == bool and p.mask.shape == (ref.height, ref.width) and p.mask.any()
            if p.points is not None:
                assert p.points.dtype == np.float32 and p.points.shape[1] == 2
                assert p.point_labels.dtype == np.int32 and p.point_labels.shape == (len(p.points),)
            if p.box is not None:
                assert p.box.dtype == np.float32 and p.box.shape == (4,)

    def test_annotated_frames_and_ground_truth(self, case) -> None:
        reader, video_id, has_gt = case
        ref = reader.video(video_id)
        annotated = reader.annotated_frames(video_id)
        assert annotated == sorted(set(annotated)) and all(0 <= t < ref.num_frames for t in annotated)
        assert bool(annotated) == has_gt
        unannotated = next((t for t in range(ref.num_frames) if t not in annotated), None)
        if unannotated is not None:
            assert reader.ground_truth(video_id, unannotated) is None
        if not has_gt:
            return
        gt = reader.ground_truth(video_id, annotated[0])
        assert isinstance(gt, FrameAnnotation) and gt.frame_index == annotated[0]
        assert gt.masks.dtype == bool and gt.masks.shape == (len(gt.object_ids), ref.height, ref.width)
        assert gt.void is None or (gt.void.dtype == bool and gt.void.shape == (ref.height, ref.width))

    def test_prompt_masks_are_first_appearances(self, case) -> None:
        """A mask prompt equals the ground truth on its frame, and the annotated frame before
        it holds no mask for that object (late entry)."""
        reader, video_id, has_gt = case
        if not has_gt:  # prompts only: no frame carries ground truth
            assert all(reader.ground_truth(video_id, p.frame_index) is None for p in reader.prompts(video_id))
            return
        annotated = reader.annotated_frames(video_id)
        for p in reader.prompts(video_id):
            assert p.frame_index in annotated
            gt = reader.ground_truth(video_id, p.frame_index)
            np.testing.assert_array_equal(gt.mask_of(p.object_id), p.mask)
            before = [t for t in annotated if t < p.frame_index]
            if before:
                assert not reader.ground_truth(video_id, before[-1]).mask_of(p.object_id).any()


def test_every_format_is_registered() -> None:
    from usam_video.datasets import READERS, DavisReader, MoseReader, PlainVideoReader, SavReader

    assert READERS == {"davis": DavisReader, "mose": MoseReader, "sav": SavReader, "video": PlainVideoReader}


def test_construction_touches_no_video(tmp_path: Path, mose_root: Path) -> None:
    """Readers fail per video: a broken video folder does not stop construction or listing."""
    import shutil

    root = tmp_path / "mose"
    shutil.copytree(mose_root, root)
    shutil.rmtree(root / "train" / "Annotations" / "deadbeef")
    reader = _open(format="mose", root=root, split="train")
    assert reader.list_videos() == ["0a1b2c3d", "deadbeef"]
    assert reader.prompts("0a1b2c3d")
