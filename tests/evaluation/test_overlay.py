"""Tests of usam_video.evaluation.overlay and pipeline.overlay: a labelled video drawn as one readable PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_run_config
from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.errors import InputError, VideoNotFoundError
from usam_video.evaluation.overlay import blend_masks, default_overlay_score
from usam_video.pipeline.overlay import write_overlay
from usam_video.store import PseudoLabelStore
from usam_video.types import Status

pytest.importorskip("matplotlib")

VIDEO = "synth-001"  # 2 objects, 6 frames of 96x128


@pytest.fixture(scope="module")
def labelled(synth_root: Path, tmp_path_factory, small_model_config) -> tuple[Path, DatasetConfig]:
    """One generated video labelled by the small random-weight model with random heads."""
    from usam_video.pipeline import label_dataset

    store = tmp_path_factory.mktemp("overlay") / "s.zarr"
    run = make_run_config(synth_root, store, [VIDEO], small_model_config)
    assert [r.outcome for r in label_dataset(run)] == ["labelled"]
    return store, run.dataset


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_png_width_grows_with_frames(labelled, tmp_path: Path) -> None:
    store, dataset = labelled
    one = write_overlay(store, dataset, VIDEO, tmp_path / "a" / "one.png", frames=[0])
    three = write_overlay(store, dataset, VIDEO, tmp_path / "three.png", frames=[0, 2, 5])
    default = write_overlay(store, dataset, VIDEO, tmp_path / "default.png", max_frames=4)
    assert one == tmp_path / "a" / "one.png"
    widths = []
    for path in (one, three, default):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            widths.append(image.size[0])
            assert 150 < image.size[1] < 600  # small: about 100 dpi, a few inches tall
    assert widths[0] < widths[1] < widths[2] < 1400
    # Every frame adds the same panel width: 1 -> 3 frames adds two panels, 3 -> 4 one.
    assert abs(2 * (widths[2] - widths[1]) - (widths[1] - widths[0])) <= 2
    # Six frames fit the default max_frames exactly; every frame is drawn.
    everything = write_overlay(store, dataset, VIDEO, tmp_path / "all.png")
    with Image.open(everything) as image:
        assert image.size[0] > widths[2]


def test_masks_are_painted_in_score_colours(labelled, tmp_path: Path) -> None:
    from matplotlib import colormaps

    store_path, dataset = labelled
    store = PseudoLabelStore.open(store_path, mode="r")
    table = store.frame_table(VIDEO)
    score = default_overlay_score(table.score_names)
    assert score.startswith("iou_") and score != "iou_unsupervised"
    masks = store.read_masks(VIDEO, 0)
    assert (table.status[0] != Status.NOT_STARTED).all() and masks.any(axis=(1, 2)).all()
    with open_dataset(dataset).frames(VIDEO) as source:
        frame = np.asarray(source[0])
    values = np.clip(table.scores[0, :, table.score_names.index(score)], 0, 1)
    colors = np.array([colormaps["RdYlGn"](v)[:3] for v in values])
    expected = blend_masks(frame, masks, colors)

    out = write_overlay(store_path, dataset, VIDEO, tmp_path / "f0.png", frames=[0])
    png = _rgb(out)
    assert png.reshape(-1, 3).std(axis=0).max() > 20  # not a uniform image
    for o in range(len(table.object_ids)):
        only = masks[o] & ~np.delete(masks, o, axis=0).any(axis=0)
        painted = np.median(expected[only], axis=0)
        raw = np.median(frame[only], axis=0)
        assert np.abs(painted - raw).max() > 15  # the blend really changes the mask's pixels
        # The mask's painted colour shows up in the PNG (interior pixels survive resampling).
        close = (np.abs(png.astype(int) - painted.astype(int)).max(axis=2) <= 12).sum()
        assert close > 30, f"object {table.object_ids[o]}: painted colour {painted} not in the PNG"


def test_blend_masks_paints_inside_only() -> None:
    image = np.full((4, 5, 3), 100, np.uint8)
    masks = np.zeros((2, 4, 5), bool)
    masks[0, :2] = True
    masks[1, 3, 4] = True
    out = blend_masks(image, masks, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    assert (out[:2] == [178, 50, 50]).all()
    assert (out[3, 4] == [50, 178, 50]).all()
    assert (out[2] == 100).all() and (out[3, :4] == 100).all()
    with pytest.raises(InputError, match=r"colours \(2, 3\)"):
        blend_masks(image, masks, [[1.0, 0.0, 0.0]])


def test_default_score_choice() -> None:
    assert default_overlay_score(["sam_iou", "iou_unsupervised", "iou_tiny"]) == "iou_tiny"
    assert default_overlay_score(["object_score", "iou_unsupervised", "sam_iou"]) == "sam_iou"
    assert default_overlay_score(["object_score", "entropy"]) == "object_score"


def test_unknown_video(labelled, tmp_path: Path) -> None:
    store, dataset = labelled
    with pytest.raises(VideoNotFoundError, match=r"'no-such-video'.*\['synth-001'\]"):
        write_overlay(store, dataset, "no-such-video", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_unknown_score(labelled, tmp_path: Path) -> None:
    store, dataset = labelled
    with pytest.raises(InputError, match=r"'bogus_score'") as info:
        write_overlay(store, dataset, VIDEO, tmp_path / "x.png", score="bogus_score")
    assert "sam_iou" in str(info.value)  # the available scores are listed


@pytest.mark.parametrize(
    ("frames", "message"),
    [([0, 6], r"0\.\.5, got frame 6"), ([-1], r"0\.\.5, got frame -1"), ([], "at least one frame")],
)
def test_bad_frames(labelled, tmp_path: Path, frames: list[int], message: str) -> None:
    store, dataset = labelled
    with pytest.raises(InputError, match=message):
        write_overlay(store, dataset, VIDEO, tmp_path / "x.png", frames=frames)


def test_too_many_frames(labelled, tmp_path: Path) -> None:
    store, dataset = labelled
    with pytest.raises(InputError, match=r"max_frames=2 frames, got 3"):
        write_overlay(store, dataset, VIDEO, tmp_path / "x.png", frames=[0, 1, 2], max_frames=2)


def test_objects_without_a_mask_are_skipped(synth_root: Path, tmp_path: Path) -> None:
    """A not_started object is not painted even if its mask plane holds pixels; pending frames
    of an incomplete video are drawn bare."""
    dataset = DatasetConfig(name="synth", root=synth_root, videos=[VIDEO])
    reader = open_dataset(dataset)
    ref = reader.video(VIDEO)
    store = PseudoLabelStore.open(tmp_path / "hand.zarr")
    writer = store.begin_video(ref, [1, 2], ["sam_iou"], ["low"], {}, "hand")
    masks = np.zeros((2, ref.height, ref.width), bool)
    masks[0, 10:40, 10:60] = True  # painted red (score 0)
    masks[1] = True  # would tint the whole frame green (score 1), but the object has not started
    status = np.array([Status.QUEUED_HUMAN, Status.NOT_STARTED], np.uint8)
    for t in range(ref.num_frames - 1):  # the last frame stays pending: an incomplete video
        writer.write_frame(t, masks, np.array([[0.0], [1.0]], np.float32), status, np.zeros(2, np.uint8))
    writer.abort()  # what was handed over lands; the video stays incomplete

    out = write_overlay(tmp_path / "hand.zarr", dataset, VIDEO, tmp_path / "hand.png", frames=[0, 5])
    png = _rgb(out).astype(int)
    with reader.frames(VIDEO) as source:
        frame = np.asarray(source[0])
    red = blend_masks(frame, masks[:1], [[0.647, 0.0, 0.149]])[15:35, 15:55].reshape(-1, 3)
    green = blend_masks(frame, masks[1:], [[0.0, 0.408, 0.216]])[50:90, 70:120].reshape(-1, 3)

    def count_close(colour: np.ndarray) -> int:
        return int((np.abs(png - colour.astype(int)).max(axis=2) <= 12).sum())

    assert count_close(np.median(red, axis=0)) > 30
    assert count_close(np.median(green, axis=0)) == 0
