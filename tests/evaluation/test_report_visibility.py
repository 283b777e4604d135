"""Nothing on a review page hides anything (issue #32, item 9): picks on one frame of a review
timeline stand apart, the timeline's legend sits outside the data, and the worst-frames strip
shows a lost object where it was last seen or says it is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.evaluation.overlay import LostObject, OverlayPanel, overlay_figure
from usam_video.evaluation.plots import review_plan_figure
from usam_video.store import PseudoLabelStore
from usam_video.types import Status

pytest.importorskip("matplotlib")

VIDEO = "synth-001"  # 2 objects, 6 frames of 96x128


def _timeline(objects: int, picks: list[tuple[int, int, int]]):
    """A drawn review-plan figure of ``objects`` flat lines at 0.5 (so picks of different
    objects on one frame share a point), queued rings on object 1."""
    frames = list(range(20))
    timelines = {obj: (frames, [0.5] * len(frames)) for obj in range(1, objects + 1)}
    figure = review_plan_figure("v", timelines, picks, score="sam_iou", queued={1: [3, 9]}, figsize=(8, 3))
    figure.canvas.draw()
    return figure, figure.axes[0]


def test_picks_on_one_frame_are_drawn_apart() -> None:
    """Two picks on frame 3 with equal values: their markers and rank labels do not coincide."""
    figure, ax = _timeline(2, [(3, 1, 1), (3, 2, 2), (12, 1, 3)])
    markers = [line for line in ax.lines if line.get_marker() == "v"]
    assert len(markers) == 3
    xy = [line.get_transform().transform(line.get_xydata())[0] for line in markers]
    on_frame_3 = sorted(xy[:2], key=lambda p: p[0])
    assert on_frame_3[1][0] - on_frame_3[0][0] >= 8  # pixels apart (10 points at 100 dpi: ~14)
    # Centred on the frame: their midpoint is where a single pick would be.
    single = ax.transData.transform((3, 0.5))
    assert abs((on_frame_3[0][0] + on_frame_3[1][0]) / 2 - single[0]) < 1
    renderer = figure.canvas.get_renderer()
    labels = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    assert set(labels) == {"#1", "#2", "#3"}
    assert not labels["#1"].overlaps(labels["#2"])


@pytest.mark.parametrize("objects", [2, 12])  # 12: the object lines drop out of the legend
def test_the_legend_does_not_cover_the_data(objects: int) -> None:
    """The legend lies wholly beside the axes' data area and inside the figure."""
    figure, ax = _timeline(objects, [(19, 1, 1), (19, 2, 2)])  # picks at the right edge
    renderer = figure.canvas.get_renderer()
    legend = ax.get_legend()
    assert legend is not None
    box, data = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.x0 >= data.x1 or box.y1 <= data.y0  # beside or below, never on the axes
    assert box.x1 <= figure.bbox.width and box.y0 >= 0  # and not cut off by the figure's edge
    texts = [t.get_text() for t in legend.get_texts()]
    assert "queued" in texts and (("object 1" in texts) == (objects <= 7))


def _panel(lost: tuple[LostObject, ...]) -> OverlayPanel:
    """A 60x80 grey frame of objects 1, 2 and 3: 1 has a mask, 2 and 3 have empty ones."""
    masks = np.zeros((3, 60, 80), bool)
    masks[0, 5:20, 5:25] = True
    return OverlayPanel(
        frame_index=4,
        image=np.full((60, 80, 3), 120, np.uint8),
        object_ids=(1, 2, 3),
        status=np.full(3, Status.ACCEPTED, np.uint8),
        masks=masks,
        values=np.array([0.9, 0.1, 0.1]),
        lost=lost,
    )


def test_a_lost_object_is_outlined_where_last_seen_or_said_missing() -> None:
    ghost = np.zeros((60, 80), bool)
    ghost[30:50, 40:70] = True
    panel = _panel((LostObject(4, 2, 1, ghost), LostObject(4, 3)))
    figure = overlay_figure([panel], video_id="v", score="sam_iou")
    axis = figure.axes[0]
    texts = [t.get_text() for t in axis.texts]
    assert "2: last seen at frame 1" in texts
    assert "object 3: missing (no mask)" in texts
    # The ghost is a dashed outline (a contour whose line style has dashes).
    styles = [dashes for c in axis.collections for _, dashes in c.get_linestyle()]
    assert any(styles) and not all(styles)  # the ghost's dashes beside object 1's solid outline
    # Without any LostObject, each empty mask is still captioned, never silently blank.
    bare = overlay_figure([_panel(())], video_id="v", score="sam_iou").axes[0]
    caption = "\n".join(t.get_text() for t in bare.texts)
    assert "object 2: missing (no mask)" in caption and "object 3: missing (no mask)" in caption


@pytest.fixture
def lost_store(synth_root: Path, tmp_path: Path) -> tuple[Path, DatasetConfig]:
    """A hand-written store of one generated video: object 1 is seen on frames 0-2 and lost
    (empty mask, low score) from frame 3; object 2 is never seen (empty on every frame)."""
    dataset = DatasetConfig(name="synth", root=synth_root, videos=[VIDEO])
    ref = open_dataset(dataset).video(VIDEO)
    store = PseudoLabelStore.open(tmp_path / "lost.zarr")
    writer = store.begin_video(ref, [1, 2], ["sam_iou"], ["low"], {}, "hand")
    for t in range(ref.num_frames):
        masks = np.zeros((2, ref.height, ref.width), bool)
        if t <= 2:
            masks[0, 10 + t : 40 + t, 10:60] = True
        scores = np.array([[0.9 if t <= 2 else 0.05], [0.5]], np.float32)
        status = np.full(2, Status.ACCEPTED, np.uint8)
        writer.write_frame(t, masks, scores, status, np.zeros(2, np.uint8))
    writer.finish()
    return tmp_path / "lost.zarr", dataset


def test_find_lost_scans_back_to_the_last_mask(lost_store) -> None:
    from usam_video.pipeline.overlay import find_lost

    store = PseudoLabelStore.open(lost_store[0], "r")
    found = find_lost(store, VIDEO, [5, 1, 5])
    where = [(x.frame_index, x.object_id, x.last_seen) for x in found]
    assert where == [(1, 2, None), (5, 1, 2), (5, 2, None)]  # by frame, each frame once
    ghost = found[1].mask
    assert ghost is not None and np.array_equal(ghost, store.read_masks(VIDEO, 2)[0])


def test_report_page_names_the_lost_objects(lost_store) -> None:
    from usam_video.pipeline.report import build_report, video_markdown

    store_path, dataset = lost_store
    report = build_report(store_path, dataset=dataset, ground_truth=False)
    digest = report.digest(VIDEO)
    assert digest.worst_frames[:3] == (3, 4, 5)  # the lost frames are the worst
    page = video_markdown(report, VIDEO)
    assert "data:image/jpeg;base64," in page  # the strip is drawn
    assert "frame 3, object 1: last seen at frame 2" in page
    assert "frame 5, object 1: last seen at frame 2" in page
    assert "object 2: missing (no mask)" in page
