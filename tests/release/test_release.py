"""Releases read back by real clients: sam2's own training datasets and segment loaders (as
installed), pycocotools, and the project's own readers. Every client sees exactly the store's
released masks, and never a frame-object the policy did not release."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tests.release.conftest import tree_hashes
from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.output_folder import MARKER
from usam_video.pipeline.release import release_store
from usam_video.release import (
    DAVIS_RESOLUTION,
    MANIFEST,
    TABLE,
    ReleasePolicy,
    mask_iou,
    plan_splits,
    select_video,
    verify_release,
)
from usam_video.store import PseudoLabelStore
from usam_video.types import Status

# A threshold on iou_video that leaves a mix of released and unreleased pseudo-labels on these
# videos (micro's iou_video spans ~0.3-1.0 on them).
POLICY = ReleasePolicy(score="iou_video", threshold=0.9)


def _released(store: PseudoLabelStore, policy: ReleasePolicy = POLICY) -> dict[str, object]:
    return {v: select_video(store.frame_table(v), policy, v) for v in store.videos()}


@pytest.fixture(scope="module")
def releases(micro_store: Path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("releases")
    out = {}
    for fmt in ("sav", "davis", "ytvis", "coco"):
        release_store(micro_store, fmt, root / fmt, policy=POLICY, splits={"val": 0.34}, seed=3)
        out[fmt] = root / fmt
    return out


def test_the_policy_releases_a_mix_and_never_a_queued_frame_object(micro_store: Path) -> None:
    store = PseudoLabelStore.open(micro_store, "r")
    released = queued = unreleased = 0
    for video_id, sel in _released(store).items():
        table = store.frame_table(video_id)
        is_queued = np.isin(table.status, [Status.QUEUED_HUMAN, Status.QUEUED_REFINE])
        assert not (sel.released & is_queued).any()
        queued += int(is_queued.sum())
        released += int(sel.released.sum())
        unreleased += int((~sel.released).sum())
        # prompts are released whatever their score
        assert sel.released[0].all()
    assert released > 0 and unreleased > 0 and queued > 0


@pytest.mark.parametrize("fmt", ["sav", "davis", "ytvis", "coco"])
def test_a_release_verifies_and_its_manifest_says_what_it_holds(releases: dict[str, Path], fmt: str) -> None:
    out = releases[fmt]
    assert verify_release(out) == []
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["dataset_format"] == fmt and manifest["policy"]["score"] == "iou_video"
    assert manifest["threshold"] == {
        "value": 0.9,
        "score": "iou_video",
        "direction": "confidence",
        "chosen_by": "policy",
    }
    assert manifest["risk"] is None and manifest["store"]["id"]
    assert manifest["scores"]["iou_video"] == "confidence" and manifest["scores"]["entropy"] == "uncertainty"
    assert manifest["runs"]["heads_pairing"] and manifest["runs"]["fingerprint"]
    assert sorted(manifest["splits"]) == ["train", "val"] and len(manifest["splits"]["val"]) == 1
    assert set(manifest["files"]) == {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
    } - {MANIFEST, MARKER}
    rows = (out / TABLE).read_text().splitlines()
    assert rows[0].startswith("video,split,frame,object,status,source,released,absent,revision,sam_iou")
    assert len(rows) - 1 == manifest["counts"]["frame_objects"]


def test_a_changed_added_or_missing_file_fails_verification(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    out = Path(shutil.copytree(releases["coco"], tmp_path / "copy"))
    (out / "train.json").write_text("{}")
    (out / "extra.txt").write_text("x")
    next((out / "images").rglob("*.jpg")).unlink()
    problems = verify_release(out)
    assert any("train.json" in p and "changed" in p for p in problems)
    assert any("extra.txt" in p and "not in the manifest" in p for p in problems)
    assert any(".jpg" in p and "missing" in p for p in problems)


def test_releasing_an_unchanged_store_again_gives_identical_bytes(
    micro_store: Path, releases: dict[str, Path], tmp_path: Path
) -> None:
    for fmt in ("sav", "davis"):
        release_store(micro_store, fmt, tmp_path / fmt, policy=POLICY, splits={"val": 0.34}, seed=3)
        assert tree_hashes(tmp_path / fmt) == tree_hashes(releases[fmt])


def test_splits_are_by_video_and_stable() -> None:
    videos = [f"v{i}" for i in range(10)]
    a = plan_splits(videos, {"val": 0.2, "test": 0.1}, seed=1)
    assert a == plan_splits(list(reversed(videos)), {"val": 0.2, "test": 0.1}, seed=1)
    assert len(a["val"]) == 2 and len(a["test"]) == 1 and len(a["train"]) == 7
    assert sorted(sum(a.values(), [])) == sorted(videos)


def test_sam2_json_dataset_reads_the_sav_release_and_sees_only_released_masks(
    micro_store: Path, releases: dict[str, Path]
) -> None:
    from training.dataset.vos_raw_dataset import JSONRawDataset

    out = releases["sav"]
    store = PseudoLabelStore.open(micro_store, "r")
    selections = _released(store)
    dataset = JSONRawDataset(str(out / "JPEGImages_24fps"), str(out / "annotations"))
    assert sorted(dataset.video_names) == store.videos()
    for i, video_id in enumerate(dataset.video_names):
        video, loader = dataset.get_video(i)
        sel = selections[video_id]
        assert loader.ann_every == 1  # every frame is annotated
        # sam2 drops a frame with any null entry: it trains on the fully released frames only
        assert [f.frame_idx for f in video.frames] == np.flatnonzero(sel.full_frames).tolist()
        for t in range(sel.released.shape[0]):
            stored = store.read_masks(video_id, t)
            segments = loader.load(t)
            for k in range(len(sel.object_ids)):
                if sel.released[t, k]:
                    expected = np.zeros_like(stored[k]) if sel.absent[t, k] else stored[k]
                    assert np.array_equal(segments[k].numpy().astype(bool), expected)
                else:
                    assert segments[k] is None


def test_the_project_sav_reader_reads_the_release_back(micro_store: Path, releases: dict[str, Path]) -> None:
    store = PseudoLabelStore.open(micro_store, "r")
    reader = open_dataset(
        DatasetConfig(name="rel", format="sav", layout="release", root=releases["sav"], split="val")
    )
    [video_id] = reader.list_videos()
    sel = _released(store)[video_id]
    assert reader.video(video_id).num_frames == sel.released.shape[0]
    assert reader.annotated_frames(video_id) == list(range(sel.released.shape[0]))
    for t in range(sel.released.shape[0]):
        truth = reader.ground_truth(video_id, t)
        stored = store.read_masks(video_id, t)
        assert truth.object_ids == tuple(o for k, o in enumerate(sel.object_ids) if sel.released[t, k])
        for k, object_id in enumerate(sel.object_ids):
            if sel.released[t, k]:
                assert np.array_equal(truth.mask_of(object_id), stored[k])
    prompts = reader.prompts(video_id)
    assert {p.object_id for p in prompts} == set(sel.object_ids) and all(p.frame_index == 0 for p in prompts)


def test_sam2_png_dataset_reads_the_davis_release_and_never_sees_an_unreleased_frame(
    micro_store: Path, releases: dict[str, Path]
) -> None:
    from training.dataset.vos_raw_dataset import PNGRawDataset

    out = releases["davis"]
    store = PseudoLabelStore.open(micro_store, "r")
    selections = _released(store)
    manifest = json.loads((out / MANIFEST).read_text())
    dataset = PNGRawDataset(
        str(out / "JPEGImages" / DAVIS_RESOLUTION),
        str(out / "Annotations" / DAVIS_RESOLUTION),
        file_list_txt=str(out / "ImageSets" / "2017" / "train.txt"),
    )
    assert dataset.video_names == manifest["splits"]["train"]
    for i, video_id in enumerate(dataset.video_names):
        video, loader = dataset.get_video(i)
        sel = selections[video_id]
        full = np.flatnonzero(sel.full_frames).tolist()
        assert [f.frame_idx for f in video.frames] == full and len(full) < sel.released.shape[0]
        palette = manifest["videos"][video_id]["palette"]
        for t in full:
            segments = loader.load(t)  # what sam2's VOSDataset gets: {palette index: mask}
            stored = store.read_masks(video_id, t)
            for k, object_id in enumerate(sel.object_ids):
                pid = palette[str(object_id)]
                if stored[k].any():
                    assert np.array_equal(segments[pid].numpy(), stored[k])
                else:
                    assert pid not in segments  # absent on a released frame: truly absent


def test_the_project_davis_reader_reads_the_release_with_frame_gaps(
    micro_store: Path, releases: dict[str, Path], generated: DatasetConfig
) -> None:
    store = PseudoLabelStore.open(micro_store, "r")
    selections = _released(store)
    reader = open_dataset(
        DatasetConfig(name="rel", root=releases["davis"], resolution=DAVIS_RESOLUTION, frame_gaps=True)
    )
    truth_reader = open_dataset(generated)
    for video_id in reader.list_videos():
        sel = selections[video_id]
        numbers = reader.frame_numbers(video_id)
        assert list(numbers) == np.flatnonzero(sel.full_frames).tolist()
        assert reader.annotated_frames(video_id) == list(range(len(numbers)))
        store_iou, release_iou = [], []
        for t, number in enumerate(numbers):
            got = reader.ground_truth(video_id, t)
            stored = store.read_masks(video_id, number)
            truth = truth_reader.ground_truth(video_id, number)
            for k, object_id in enumerate(sel.object_ids):
                assert np.array_equal(got.mask_of(object_id), stored[k])
                store_iou.append(mask_iou(stored[k], truth.mask_of(object_id)))
                release_iou.append(mask_iou(got.mask_of(object_id), truth.mask_of(object_id)))
        # evaluating the release equals evaluating the store on the released frame-objects
        assert release_iou == store_iou and len(store_iou) > 0


def test_ytvis_and_coco_rle_decode_with_pycocotools_to_the_released_masks(
    micro_store: Path, releases: dict[str, Path]
) -> None:
    store = PseudoLabelStore.open(micro_store, "r")
    selections = _released(store)
    ytvis = json.loads((releases["ytvis"] / "train.json").read_text()) | {}
    ytvis_val = json.loads((releases["ytvis"] / "val.json").read_text())
    names = {v["id"]: v["name"] for v in ytvis["videos"]} | {}
    checked = 0
    for data in (ytvis, ytvis_val):
        names = {v["id"]: v["name"] for v in data["videos"]}
        assert data["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
        for ann in data["annotations"]:
            video_id = names[ann["video_id"]]
            sel = selections[video_id]
            k = sel.object_ids.index(ann["object_id"])
            for t, rle in enumerate(ann["segmentations"]):
                if not sel.released[t, k]:
                    assert rle is None and ann["areas"][t] is None
                    continue
                expected = store.read_masks(video_id, t)[k] & ~sel.absent[t, k]
                assert np.array_equal(mask_utils.decode(rle).astype(bool), expected)
                assert ann["areas"][t] == int(mask_utils.area(rle)) == int(expected.sum())
                checked += 1
    assert checked > 0

    coco = json.loads((releases["coco"] / "train.json").read_text())
    images = {i["id"]: i for i in coco["images"]}
    for image in coco["images"]:
        assert selections[image["video"]].full_frames[image["frame_index"]]
        assert (releases["coco"] / "images" / image["file_name"]).is_file()
    for ann in coco["annotations"]:
        image = images[ann["image_id"]]
        k = selections[image["video"]].object_ids.index(ann["object_id"])
        mask = store.read_masks(image["video"], image["frame_index"])[k]
        assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), mask)
        assert ann["bbox"] == [float(v) for v in mask_utils.toBbox(ann["segmentation"])]
    assert coco["annotations"]


def test_images_are_the_dataset_jpegs_byte_for_byte(
    releases: dict[str, Path], generated: DatasetConfig
) -> None:
    reader = open_dataset(generated)
    video_id = reader.list_videos()[0]
    source = reader.frames(video_id)
    for t in range(3):
        copied = releases["sav"] / "JPEGImages_24fps" / video_id / f"{t:05d}.jpg"
        assert copied.read_bytes() == source.source_file(t).read_bytes()


def test_release_configs_load_and_the_default_is_the_library_default() -> None:
    from usam_video.release import load_release_policy

    configs = Path(__file__).resolve().parents[2] / "configs" / "release"
    policies = {p.stem: load_release_policy(p) for p in sorted(configs.glob("*.yaml"))}
    assert policies["default"] == ReleasePolicy() and policies["default"].score == "good_release"
    assert policies["iou-video"].score == "iou_video"
