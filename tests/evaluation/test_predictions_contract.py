"""One contract for every :class:`~usam_video.pipeline.eval_sources.Predictions`: a store, a DAVIS
predictions folder and an SA-V predictions folder holding the same generated masks read back the
same (frames in the order asked, bool ``(O, H, W)`` masks, the asked objects' masks equal) and
fail the same way (an unknown video, a frame past the end, the wrong frame size).

Where a layout cannot behave like the others, the difference is a row of :data:`ABSENT_OBJECT`,
not a skipped test: a DAVIS index map cannot tell an object never predicted from one predicted
empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from usam_video.errors import EvaluationError, InputError, UsamVideoError
from usam_video.evaluation.protocols import FrameMasks
from usam_video.palette import write_palette_png
from usam_video.pipeline.eval_sources import (
    DavisFolderPredictions,
    Predictions,
    SavFolderPredictions,
    StorePredictions,
)
from usam_video.store import PseudoLabelStore
from usam_video.types import Status, VideoRef

T, H, W = 4, 6, 8
#: Not 1..O: a source that confused an object's index with its id would pass with 1, 2.
OBJECT_IDS = (2, 5)
VIDEO = VideoRef(dataset="synthetic", video_id="clip", num_frames=T, height=H, width=W)


def _index_maps() -> np.ndarray:
    """uint8 ``(T, H, W)``: each object on every frame (so "all objects" is the same set from
    every layout), where it lies varying with the frame, never overlapping (a DAVIS map holds
    one id per pixel)."""
    rng = np.random.default_rng(7)
    maps = rng.choice(np.array([0, *OBJECT_IDS], dtype=np.uint8), size=(T, H, W))
    for t in range(T):
        for o, object_id in enumerate(OBJECT_IDS):
            maps[t, o, t] = object_id  # present on every frame whatever the draw
    return maps


MAPS = _index_maps()


def truth(frame: int, object_id: int) -> np.ndarray:
    """bool ``(H, W)``: the generated mask of one object on one frame."""
    return MAPS[frame] == object_id


def _store(root: Path) -> Predictions:
    store = PseudoLabelStore.open(root / "predictions.zarr")
    writer = store.begin_video(VIDEO, OBJECT_IDS, ("sam_iou",), ["low"], {"generated": True}, "contract")
    for t in range(T):
        masks = np.stack([truth(t, i) for i in OBJECT_IDS])
        o = len(OBJECT_IDS)
        status = np.full(o, Status.ACCEPTED, dtype=np.uint8)
        writer.write_frame(t, masks, np.zeros((o, 1), np.float32), status, np.zeros(o, np.uint8))
    writer.finish()
    return StorePredictions(PseudoLabelStore.open(root / "predictions.zarr", mode="r"))


def _davis_folder(root: Path) -> Predictions:
    for t in range(T):
        write_palette_png(root / "davis" / VIDEO.video_id / f"{t:05d}.png", MAPS[t])
    return DavisFolderPredictions(root / "davis")


def _sav_folder(root: Path) -> Predictions:
    for object_id in OBJECT_IDS:
        for t in range(T):
            path = root / "sav" / VIDEO.video_id / f"{object_id:03d}" / f"{t:05d}.png"
            write_palette_png(path, truth(t, object_id).astype(np.uint8))
    return SavFolderPredictions(root / "sav")


BUILDERS: dict[str, Callable[[Path], Predictions]] = {
    "store": _store,
    "davis-folder": _davis_folder,
    "sav-folder": _sav_folder,
}

#: Asked for an object it does not hold: does the source raise (True) or read it as empty?
#: A DAVIS index map has no list of objects, so an absent id is an empty mask there.
ABSENT_OBJECT = {"store": True, "davis-folder": False, "sav-folder": True}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Predictions:
    return BUILDERS[request.param](tmp_path_factory.mktemp(request.param))


def _check_frame(masks: FrameMasks, frame: int, asked: tuple[int, ...]) -> None:
    """The shape and dtype contract of one frame, and the asked objects' masks equal."""
    assert isinstance(masks, FrameMasks)
    assert masks.masks.dtype == bool
    assert masks.masks.shape == (len(masks.object_ids), H, W)
    assert set(asked) <= set(masks.object_ids), (asked, masks.object_ids)
    for object_id in asked:
        np.testing.assert_array_equal(masks.mask_of(object_id), truth(frame, object_id))
        np.testing.assert_array_equal(masks.masks[masks.object_ids.index(object_id)], truth(frame, object_id))


def test_every_implementation_is_in_the_contract() -> None:
    """A new Predictions class joins :data:`BUILDERS` (the copy-first-mask baseline, which
    lives in the evaluation pipeline and reads no source, aside)."""
    public = {cls.__name__ for cls in Predictions.__subclasses__() if not cls.__name__.startswith("_")}
    assert public == {"StorePredictions", "DavisFolderPredictions", "SavFolderPredictions"}


def test_kind_and_location(source: Predictions) -> None:
    assert source.kind in BUILDERS
    assert isinstance(source.location, str) and source.location


def test_a_present_video_of_the_right_size_is_not_skipped(source: Predictions) -> None:
    assert source.prepare(VIDEO) is None


@pytest.mark.parametrize(
    ("frames", "asked"),
    [
        ([0, 1, 2, 3], OBJECT_IDS),
        ([3, 0, 2], OBJECT_IDS),  # the order asked, not sorted
        ([1], (OBJECT_IDS[1],)),  # a subset of the objects (more may come back)
        ([2, 1], tuple(reversed(OBJECT_IDS))),
    ],
)
def test_reads_the_asked_frames_and_objects(
    source: Predictions, frames: list[int], asked: tuple[int, ...]
) -> None:
    read = source.read(VIDEO, frames, asked)
    assert list(read) == frames
    for t in frames:
        _check_frame(read[t], t, asked)


def test_no_objects_asked_reads_every_object(source: Predictions) -> None:
    read = source.read(VIDEO, [0, 3], None)
    assert list(read) == [0, 3]
    for t, masks in read.items():
        assert masks.object_ids == OBJECT_IDS  # every object here is on every frame
        _check_frame(masks, t, OBJECT_IDS)


def test_an_unknown_video_is_an_error_naming_it(source: Predictions) -> None:
    ghost = replace(VIDEO, video_id="ghost")
    with pytest.raises(UsamVideoError, match="ghost"):
        if source.prepare(ghost) is None:
            source.read(ghost, [0], OBJECT_IDS)


@pytest.mark.parametrize("frame", [T, T + 5])
def test_a_frame_past_the_end_is_an_input_error_naming_it(source: Predictions, frame: int) -> None:
    with pytest.raises(InputError) as raised:
        source.read(VIDEO, [0, frame], OBJECT_IDS)
    assert str(frame) in str(raised.value)


def test_another_frame_size_is_an_evaluation_error_naming_both(source: Predictions) -> None:
    taller = replace(VIDEO, height=H + 1)
    with pytest.raises(EvaluationError) as raised:
        if source.prepare(taller) is None:
            source.read(taller, [0], OBJECT_IDS)
    assert f"{H + 1}x{W}" in str(raised.value) and f"{H}x{W}" in str(raised.value)


def test_an_absent_object(source: Predictions) -> None:
    absent = 9
    if ABSENT_OBJECT[source.kind]:
        with pytest.raises(EvaluationError, match=str(absent)):
            source.read(VIDEO, [0], (*OBJECT_IDS, absent))
        return
    read = source.read(VIDEO, [0], (*OBJECT_IDS, absent))
    _check_frame(read[0], 0, OBJECT_IDS)
    assert not read[0].mask_of(absent).any()
