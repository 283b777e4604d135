"""Export -> annotator edit -> import, in every format: exact masks, human status, SAM 2
re-propagation from the corrections, and a second import that changes nothing."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.conftest import make_run_config
from tests.digest_helpers import tree_digest
from tests.review.helpers import (
    EDITORS,
    VIDEO,
    H,
    W,
    copy_store,
    edit_coco,
    edit_png,
    labelled_template,
    rectangle,
)
from usam_video.config import PolicyConfig, PolicyRule
from usam_video.pipeline import export_queue, import_corrections, label_dataset
from usam_video.review import read_manifest
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, Status


@pytest.fixture(scope="module")
def template(tmp_path_factory, synth_root: Path, small_model_config) -> Path:
    return labelled_template(tmp_path_factory, synth_root, small_model_config)


@pytest.fixture()
def store(template: Path, tmp_path: Path) -> Path:
    return copy_store(template, tmp_path / "s.zarr")


def _all_masks(store: Path) -> np.ndarray:
    s = PseudoLabelStore.open(store, "r")
    return np.stack([s.read_masks(VIDEO, t) for t in range(6)])


def test_export_writes_queued_frames_images_and_a_manifest(store: Path, tmp_path: Path, synth_root) -> None:
    digest = tree_digest(store)
    result = export_queue(store, "coco", tmp_path / "out")
    assert tree_digest(store) == digest  # an export never writes to the store
    assert result.frames == {VIDEO: 5} and result.frame_objects == 10  # frames 1..5, both objects
    manifest = read_manifest(result.manifest)
    table = PseudoLabelStore.open(store, "r").frame_table(VIDEO)
    assert manifest.store == str(store.resolve()) and manifest.annotation_format == "coco"
    assert [(f.frame, f.task_frame) for f in manifest.frames] == [(t, t - 1) for t in range(1, 6)]
    for e in manifest.entries:
        o = e.object_id - 1
        assert e.video_id == VIDEO and e.revision == int(table.revision[e.frame, o])
        assert e.status == "queued_human" and e.reason == "low" and e.source == "propagated"
    # images are the dataset's frames, referenced by relative path from the COCO file
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    for image in coco["images"]:
        jpeg = tmp_path / "out" / image["file_name"]
        assert jpeg.is_file() and image["file_name"] == f"images/{VIDEO}/{image['frame_index']:05d}.jpg"
        with Image.open(jpeg) as im:
            assert im.size == (W, H) and (image["width"], image["height"]) == (W, H)
    assert {c["id"]: c["name"] for c in coco["categories"]} == {1: "object_1", 2: "object_2"}
    assert all(
        a["iscrowd"] == 0 and isinstance(a["segmentation"]["counts"], str) for a in coco["annotations"]
    )

    # CVAT: one task per video, tracks per object, masks with task frame numbers
    export_queue(store, "cvat", tmp_path / "cvat")
    root = ET.parse(tmp_path / "cvat" / "annotations" / f"{VIDEO}.xml").getroot()
    assert root.findtext("version") == "1.1" and root.findtext("meta/task/size") == "5"
    assert root.findtext("meta/task/original_size/width") == str(W)
    assert [t.get("label") for t in root.iter("track")] == ["object_1", "object_2"]
    assert [m.get("frame") for m in root.find("track").iter("mask")] == ["0", "1", "2", "3", "4"]

    # PNG: per-object binary masks and a palette view
    export_queue(store, "png", tmp_path / "png", video_id=VIDEO)
    assert len(list((tmp_path / "png" / "masks" / VIDEO).glob("*/*.png"))) == 10
    assert len(list((tmp_path / "png" / "palette" / VIDEO).glob("*.png"))) == 5


@pytest.mark.parametrize("fmt", ["cvat", "coco", "png"])
def test_round_trip_of_an_edited_mask_is_exact_and_idempotent(store: Path, tmp_path: Path, fmt: str) -> None:
    before = _all_masks(store)
    out = tmp_path / "export"
    export_queue(store, fmt, out)
    edited = rectangle()
    EDITORS[fmt](out, 2, 1, edited)

    result = import_corrections(store, out)
    assert result.format == fmt and result.corrected == {VIDEO: 10} and result.skipped == 0
    assert [r.outcome for r in result.relabelled] == ["labelled"]
    s = PseudoLabelStore.open(store, "r")
    table = s.frame_table(VIDEO)
    after = _all_masks(store)
    np.testing.assert_array_equal(after[2, 0], edited)  # exactly the annotator's mask, after relabelling
    # every other exported mask came back bit-exact (the annotator confirmed it)
    unchanged = [(t, o) for t in range(1, 6) for o in range(2) if (t, o) != (2, 0)]
    for t, o in unchanged:
        np.testing.assert_array_equal(after[t, o], before[t, o], f"frame {t} object {o + 1}")
    assert (table.status[1:] == Status.CORRECTED).all() and (table.source[1:] == MaskSource.HUMAN).all()
    assert table.status[0].tolist() == [Status.ACCEPTED] * 2  # frame 0 (prompt) was not exported
    history = s.history(VIDEO)
    assert len(history) == 10
    [old] = [i for i, h in enumerate(history) if (h.frame_index, h.object_id) == (2, 1)]
    np.testing.assert_array_equal(s.history_mask(VIDEO, old), before[2, 0])

    digest = tree_digest(store)
    again = import_corrections(store, out)
    assert again.corrected == {} and again.skipped == 10 and again.relabelled == ()
    assert tree_digest(store) == digest


def test_correction_repropagates_following_frames_and_survives_a_later_run(
    store: Path, tmp_path: Path, synth_root: Path, small_model_config
) -> None:
    before = _all_masks(store)
    out = tmp_path / "export"
    export_queue(store, "coco", out)
    edited = rectangle(10, 10, 60, 70)
    edit_coco(out, 2, 1, edited)
    # the annotator only reviewed frame 2's object 1: keep that annotation alone
    coco_path = out / "annotations.json"
    data = json.loads(coco_path.read_text())
    image_id = next(i["id"] for i in data["images"] if i["frame_index"] == 2)
    data["annotations"] = [
        a for a in data["annotations"] if (a["image_id"], a["category_id"]) == (image_id, 1)
    ]
    coco_path.write_text(json.dumps(data))

    result = import_corrections(store, coco_path)
    assert result.corrected == {VIDEO: 1}
    after = _all_masks(store)
    np.testing.assert_array_equal(after[2, 0], edited)
    # SAM 2's memory now holds the human mask: the following frames were propagated again
    assert any(not np.array_equal(after[t, 0], before[t, 0]) for t in range(3, 6))
    table = PseudoLabelStore.open(store, "r").frame_table(VIDEO)
    assert table.status[2, 0] == Status.CORRECTED
    assert (np.delete(table.status[1:], 1, axis=0) != Status.CORRECTED).all()  # only frame 2 object 1

    # a later `run` with another config (new fingerprint: the video is labelled from scratch)
    policy = PolicyConfig(
        name="other", rules=[PolicyRule(name="low", score="sam_iou", op="<", threshold=1.5, route="human")]
    )
    [rerun] = label_dataset(make_run_config(synth_root, store, [VIDEO], small_model_config, policy))
    assert rerun.outcome == "labelled"
    s = PseudoLabelStore.open(store, "r")
    np.testing.assert_array_equal(s.read_masks(VIDEO, 2)[0], edited)
    assert s.frame_table(VIDEO).status[2, 0] == Status.CORRECTED
    assert s.frame_table(VIDEO).source[2, 0] == MaskSource.HUMAN


def test_what_annotation_tools_write_back_is_read(store: Path, tmp_path: Path) -> None:
    """CVAT: a hidden object (outside=1) is an empty mask, pieces of one label on a frame are
    united. COCO: a tool that renumbers categories and drops our image fields still maps back."""
    cvat = tmp_path / "cvat"
    export_queue(store, "cvat", cvat)
    path = cvat / "annotations" / f"{VIDEO}.xml"
    tree = ET.parse(path)
    track1, track2 = tree.getroot().findall("track")
    track1.find("mask[@frame='0']").set("outside", "1")  # task frame 0 = video frame 1
    extra = dict(track2.find("mask[@frame='1']").attrib)
    extra.update(rle="0, 4", left="0", top="0", width="2", height="2")  # a 2x2 piece at the corner
    ET.SubElement(track2, "mask", extra)
    tree.write(path)
    before = _all_masks(store)
    result = import_corrections(store, path, relabel=False)  # the XML itself, manifest one folder up
    assert result.corrected == {VIDEO: 10} and result.relabelled == ()
    after = _all_masks(store)
    assert not after[1, 0].any()
    expected = before[2, 1].copy()
    expected[:2, :2] = True
    np.testing.assert_array_equal(after[2, 1], expected)

    # every exported frame-object is corrected now: nothing is queued any more
    assert export_queue(store, "coco", tmp_path / "again").frame_objects == 0


def test_coco_from_another_tool_maps_back_by_name_and_file_name(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "coco"
    export_queue(store, "coco", out)
    path = out / "annotations.json"
    data = json.loads(path.read_text())
    renumber = {1: 10, 2: 20}  # a tool that renumbers categories keeps their names
    for c in data["categories"]:
        c["id"] = renumber[c["id"]]
    for a in data["annotations"]:
        a["category_id"] = renumber[a["category_id"]]
    for i in data["images"]:
        del i["video_id"], i["frame_index"]  # and drops fields it does not know
    edit_coco_by_name = rectangle(0, 0, 10, 10)
    ann = data["annotations"][0]
    ann["segmentation"] = {
        "size": [H, W],
        "counts": mask_utils.encode(np.asfortranarray(edit_coco_by_name.astype(np.uint8)))["counts"].decode(),
    }
    path.write_text(json.dumps(data))
    result = import_corrections(store, path, relabel=False)
    assert result.corrected == {VIDEO: 10}
    np.testing.assert_array_equal(_all_masks(store)[1, 0], edit_coco_by_name)


def test_a_failing_relabel_is_reported_and_keeps_the_corrections(
    store: Path, tmp_path: Path, monkeypatch
) -> None:
    import usam_video.pipeline.review as review_pipeline
    from usam_video.errors import DatasetNotFoundError

    def moved(*args, **kwargs):
        raise DatasetNotFoundError("dataset root moved")

    monkeypatch.setattr(review_pipeline, "relabel_videos", moved)
    out = tmp_path / "png"
    export_queue(store, "png", out)
    edit_png(out, 2, 1, rectangle())
    result = import_corrections(store, out)
    assert [(r.video_id, r.outcome) for r in result.relabelled] == [(VIDEO, "failed")]
    assert "dataset root moved" in result.relabelled[0].error
    np.testing.assert_array_equal(_all_masks(store)[2, 0], rectangle())
