"""The per-video path end to end, without Prefect."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_run_config
from usam_video.errors import FrameReadError
from usam_video.pipeline import label_dataset, label_video, load_context, run_fingerprint
from usam_video.score_registry import VIDEO_FEATURES
from usam_video.store import PseudoLabelStore
from usam_video.types import Status


@pytest.fixture()
def dataset(synth_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return root


def test_label_video_writes_every_frame_and_score(dataset: Path, tmp_path: Path, small_model_config) -> None:
    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-001"], small_model_config)
    context = load_context(run)
    result = label_video(context, "synth-001")
    assert result.outcome == "labelled" and result.frames == 6 and result.objects == 2
    assert result.accepted + result.queued_refine + result.queued_human == 12
    assert 0 < result.mean_predicted_iou < 1
    store = PseudoLabelStore.open(run.store_path, "r")
    table = store.frame_table("synth-001")
    assert table.score_names == context.score_names and len(table.score_names) == 13 + len(VIDEO_FEATURES)
    assert np.isfinite(table.scores).all() and (table.status != Status.PENDING).all()
    # every decoder token scored by SAM and the six IoU heads
    assert table.candidate_score_names[0] == "sam_iou" and len(table.candidate_score_names) == 7
    assert table.candidate_scores.shape == (6, 2, 4, 7) and np.isfinite(table.candidate_scores).all()
    prov = store.summary("synth-001").provenance
    assert prov["model_untrained"] and prov["heads_untrained"] and prov["checkpoint_sha256"] == "random"
    assert prov["sam2_version"] == "1.1.0"
    # frame 0 holds the prompt itself
    gt = context.reader.prompts("synth-001")
    for o, prompt in enumerate(gt):
        m = store.read_masks("synth-001", 0)[o]
        assert (m & prompt.mask).sum() / (m | prompt.mask).sum() > 0.8
    # queued entries agree with the counts
    assert len(store.queue()) == result.queued_refine + result.queued_human


def test_complete_video_is_skipped_and_untouched(dataset: Path, tmp_path: Path, small_model_config) -> None:
    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-000"], small_model_config)
    context = load_context(run)
    label_video(context, "synth-000")
    chunk = tmp_path / "s.zarr/videos/synth-000/masks/c/0/0/0/0"
    stamp = chunk.stat().st_mtime_ns
    again = label_video(context, "synth-000")
    assert again.outcome == "skipped" and again.frames == 6
    assert chunk.stat().st_mtime_ns == stamp


def test_interrupted_video_is_redone_and_equals_an_uninterrupted_run(
    dataset: Path, tmp_path: Path, small_model_config
) -> None:
    reference = make_run_config(dataset, tmp_path / "ref.zarr", ["synth-002"], small_model_config)
    label_video(load_context(reference), "synth-002")

    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-002"], small_model_config)
    jpg = dataset / "JPEGImages/480p/synth-002/00004.jpg"
    good = jpg.read_bytes()
    jpg.write_bytes(good[: len(good) // 3])  # truncated: the header reads, the pixels do not
    with pytest.raises(FrameReadError, match="00004.jpg"):
        label_video(load_context(run), "synth-002")
    store = PseudoLabelStore.open(run.store_path, "r")
    assert not store.is_complete("synth-002")
    assert store.summary("synth-002").status_counts["pending"] > 0

    jpg.write_bytes(good)
    assert label_video(load_context(run), "synth-002").outcome == "labelled"
    ref = PseudoLabelStore.open(reference.store_path, "r")
    store = PseudoLabelStore.open(run.store_path, "r")
    assert store.is_complete("synth-002")
    for t in range(6):
        np.testing.assert_array_equal(store.read_masks("synth-002", t), ref.read_masks("synth-002", t))
    np.testing.assert_array_equal(store.frame_table("synth-002").scores, ref.frame_table("synth-002").scores)


def test_bad_video_fails_alone_and_stored_data_survives(
    dataset: Path, tmp_path: Path, small_model_config
) -> None:
    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-000", "synth-001"], small_model_config)
    label_dataset(run)
    before = PseudoLabelStore.open(run.store_path, "r").read_masks("synth-001", 3)
    # synth-001 loses a frame; a new video is added; the complete videos stay as they were
    (dataset / "JPEGImages/480p/synth-001/00002.jpg").unlink()
    run2 = make_run_config(
        dataset, tmp_path / "s.zarr", ["synth-001", "synth-002", "synth-000"], small_model_config
    )
    assert run_fingerprint(run2) == run_fingerprint(
        run
    )  # the video list is not part of the output's identity
    results = {r.video_id: r for r in label_dataset(run2)}
    assert results["synth-001"].outcome == "skipped"  # complete under the same config: not reread
    assert results["synth-002"].outcome == "labelled" and results["synth-000"].outcome == "skipped"

    run3 = make_run_config(
        dataset,
        tmp_path / "s.zarr",
        ["synth-001", "synth-002"],
        small_model_config.model_copy(update={"seed": 5}),
    )
    results = {r.video_id: r for r in label_dataset(run3)}
    assert results["synth-001"].outcome == "failed" and "00002.jpg" in results["synth-001"].error
    assert results["synth-002"].outcome == "labelled"
    store = PseudoLabelStore.open(run.store_path, "r")
    np.testing.assert_array_equal(store.read_masks("synth-001", 3), before)  # nothing lost
    assert store.is_complete("synth-001")
