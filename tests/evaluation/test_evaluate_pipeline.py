"""usam_video.pipeline.evaluate: sources (store, DAVIS and SA-V folders), both protocols, the
ranking of a store's scores, the files written, and clear errors on bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_run_config
from tests.evaluation.helpers import (
    FAKE_SCORES,
    copy_davis_predictions,
    write_fake_store,
    write_sav_predictions,
)
from usam_video.config import DatasetConfig
from usam_video.errors import EvaluationError
from usam_video.evaluation import DavisReport, SavReport, db_eval_iou
from usam_video.palette import write_palette_png
from usam_video.pipeline import EvaluationResult, evaluate_predictions, write_evaluation
from usam_video.pipeline.evaluate import (
    RANDOM_SAMPLE,
    evaluation_markdown,
    masks_to_index_map,
    score_direction,
)

VIDEOS = ["synth-000", "synth-001"]


@pytest.fixture(scope="module")
def synth(synth_root: Path) -> DatasetConfig:
    return DatasetConfig(name="synth", root=synth_root, videos=VIDEOS)


@pytest.fixture(scope="module")
def annotations(synth_root: Path) -> Path:
    return synth_root / "Annotations" / "480p"


@pytest.fixture(scope="module")
def fake_store(synth: DatasetConfig, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fake") / "s.zarr"
    write_fake_store(synth, path, VIDEOS)
    return path


# ----------------------------------------------------------------------------- helpers


def test_masks_to_index_map_higher_id_wins_on_overlap() -> None:
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[0, :2] = True  # id 7, rows 0-1
    masks[1, 1:3] = True  # id 2, rows 1-2 (overlaps id 7 on row 1)
    masks[2, 3, 3] = True  # id 254
    got = masks_to_index_map((7, 2, 254), masks)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got[:, 0], [7, 7, 2, 0])
    assert got[3, 3] == 254
    for bad in ((0, 2, 3), (1, 2, 255)):
        with pytest.raises(EvaluationError, match=r"1\.\.254.*--protocol sav"):
            masks_to_index_map(bad, masks)


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("sam_iou", "confidence"),
        ("object_score", "confidence"),
        ("iou_large", "confidence"),
        ("stability", "confidence"),
        ("task_gap", "uncertainty"),
        ("model_gap", "uncertainty"),
        ("entropy", "uncertainty"),
        ("mystery", None),
    ],
)
def test_score_direction(name: str, direction: str | None) -> None:
    assert score_direction(name) == direction


# ----------------------------------------------------------------------------- folders


def test_davis_folder_of_ground_truth_is_perfect_in_both_protocols(
    synth: DatasetConfig, annotations: Path, tmp_path: Path
) -> None:
    folder = copy_davis_predictions(annotations, tmp_path / "pred", VIDEOS)
    davis = evaluate_predictions(folder, synth)
    assert davis.source_kind == "davis-folder" and isinstance(davis.jf, DavisReport)
    assert davis.global_scores() == {"J&F": 1.0, "J": 1.0, "F": 1.0}
    assert davis.videos == tuple(VIDEOS) and davis.skipped == {}
    assert davis.jf.sequences[0].frames == (1, 2, 3, 4)  # 6 frames, first and last left out
    assert davis.ranking is None and "no scores" in davis.ranking_note
    sav = evaluate_predictions(folder, synth, "sav")
    assert isinstance(sav.jf, SavReport) and sav.global_scores() == {"J&F": 100.0, "J": 100.0, "F": 100.0}
    assert [r["objects"] for r in sav.sequence_rows()] == [1, 2]


def test_sav_folder_is_detected_and_read_in_both_protocols(
    synth: DatasetConfig, annotations: Path, tmp_path: Path
) -> None:
    folder = write_sav_predictions(synth, tmp_path / "sav", VIDEOS)
    sav = evaluate_predictions(folder, synth, "sav")
    assert sav.source_kind == "sav-folder" and sav.global_scores()["J&F"] == 100.0
    davis = evaluate_predictions(folder, synth, "davis")
    assert davis.global_scores()["J&F"] == 1.0
    # The layout can be forced; forcing the wrong one is a clear error naming a file.
    with pytest.raises(EvaluationError, match=r"synth-000.*00001\.png"):
        evaluate_predictions(folder, synth, layout="davis")


def test_shifted_prediction_matches_numpy_on_one_frame(
    synth: DatasetConfig, annotations: Path, tmp_path: Path
) -> None:
    folder = copy_davis_predictions(annotations, tmp_path / "pred", VIDEOS, shift=1)
    result = evaluate_predictions(folder, synth)
    seq = result.jf.sequences[1]
    obj = seq.objects[1]  # synth-001 object 2
    gt = np.array(Image.open(annotations / "synth-001" / "00003.png")) == 2
    pred = np.array(Image.open(annotations / "synth-001" / "00002.png")) == 2
    expected = np.logical_and(gt, pred).sum() / np.logical_or(gt, pred).sum()
    assert seq.frames[2] == 3 and obj.j[2] == pytest.approx(expected, abs=1e-12)
    assert 0.0 < result.global_scores()["J&F"] < 1.0


def test_sparse_ground_truth_is_skipped_with_its_reason(
    synth_root: Path, annotations: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    for png in (data / "Annotations" / "480p" / "synth-001").glob("*.png"):
        if png.name != "00000.png":
            png.unlink()
    config = DatasetConfig(name="sparse", root=data, videos=VIDEOS)
    # synth-001 has nothing to evaluate, so the folder need not hold it.
    folder = copy_davis_predictions(annotations, tmp_path / "pred", ["synth-000"])
    result = evaluate_predictions(folder, config)
    assert result.videos == ("synth-000",)
    assert "1 annotated frame" in result.skipped["synth-001"]
    only_sparse = DatasetConfig(name="sparse", root=data, videos=["synth-001"])
    with pytest.raises(EvaluationError, match="synth-001: 1 annotated frame"):
        evaluate_predictions(folder, only_sparse)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        ("wrong_size", r"synth-001/00002\.png: expected a 96x128 \(HxW\) mask, found 50x60"),
        ("missing_video", r"pred/synth-001: expected a folder of %05d\.png masks for sequence 'synth-001'"),
        ("missing_frame", r"synth-000/00003\.png: expected the mask of frame 3, found nothing"),
        ("void_id", r"found id 255\. 255 marks void"),
    ],
)
def test_bad_prediction_folder_names_the_file(
    synth: DatasetConfig, annotations: Path, tmp_path: Path, break_it: str, message: str
) -> None:
    folder = copy_davis_predictions(annotations, tmp_path / "pred", VIDEOS)
    if break_it == "wrong_size":
        write_palette_png(folder / "synth-001" / "00002.png", np.zeros((50, 60), np.uint8))
    elif break_it == "missing_video":
        shutil.rmtree(folder / "synth-001")
    elif break_it == "missing_frame":
        (folder / "synth-000" / "00003.png").unlink()
    else:
        write_palette_png(folder / "synth-000" / "00002.png", np.full((96, 128), 255, np.uint8))
    with pytest.raises(EvaluationError, match=message):
        evaluate_predictions(folder, synth)


def test_source_that_is_neither_store_nor_predictions(synth: DatasetConfig, tmp_path: Path) -> None:
    (tmp_path / "junk" / "synth-000").mkdir(parents=True)
    (tmp_path / "junk" / "synth-000" / "notes.txt").write_text("x")
    with pytest.raises(EvaluationError, match="found neither.*DAVIS.*SA-V"):
        evaluate_predictions(tmp_path / "junk", synth)
    with pytest.raises(EvaluationError, match="found nothing"):
        evaluate_predictions(tmp_path / "absent", synth)
    with pytest.raises(EvaluationError, match="protocol: expected one of"):
        evaluate_predictions(tmp_path / "junk", synth, "coco")
    with pytest.raises(EvaluationError, match="layout: expected one of"):
        evaluate_predictions(tmp_path / "junk", synth, layout="mose")


# ----------------------------------------------------------------------------- stores


def test_store_jf_and_ranking_follow_the_protocol(synth: DatasetConfig, fake_store: Path) -> None:
    result = evaluate_predictions(fake_store, synth)
    assert result.source_kind == "store" and result.videos == tuple(VIDEOS)
    # J of the first evaluated frame from the store's own mask.
    from usam_video.store import PseudoLabelStore

    store = PseudoLabelStore.open(fake_store, "r")
    gt = np.array(Image.open(synth.root / "Annotations" / "480p" / "synth-001" / "00001.png"))
    expected = db_eval_iou(gt == 2, store.read_masks("synth-001", 1)[1])
    assert result.jf.sequences[1].objects[1].j[0] == pytest.approx(expected, abs=1e-12)

    ranking = result.ranking
    assert ranking is not None and result.ranking_videos == tuple(VIDEOS)
    # Frames 1..5 of 1 + 2 objects; frame 0 is every object's prompt.
    assert ranking.n_items == 5 * 3
    names = [c.name for c in ranking.curves]
    assert names == ["sam_iou", "object_score", "iou_tiny", "task_gap", RANDOM_SAMPLE]
    assert result.unranked_scores == {
        "mystery": "unknown direction (neither a confidence nor an uncertainty)"
    }
    assert result.score_directions["sam_iou"] == "confidence"
    assert result.score_directions["task_gap"] == "uncertainty"
    assert ranking.oracle.relative_auc == 1.0
    # sam_iou is the true IoU: flipped, it orders like the oracle; task_gap = 1 - IoU too.
    assert ranking.curve("sam_iou").relative_auc == pytest.approx(1.0, abs=1e-6)
    assert ranking.curve("task_gap").relative_auc == pytest.approx(1.0, abs=1e-6)
    assert ranking.curve("sam_iou").correlation.spearman == pytest.approx(-1.0)
    # A constant score ties everywhere: exactly the expected random ordering.
    assert ranking.curve("object_score").relative_auc_vs_random == pytest.approx(0.0, abs=1e-9)
    rows = result.ranking_rows()
    assert [r["score"] for r in rows][-2:] == ["random", "oracle"]
    assert rows[-1]["relative_auc"] == 1.0 and rows[-1]["pearson"] is None
    # The seed fixes the random draw.
    again = evaluate_predictions(fake_store, synth)
    assert again.ranking.curve(RANDOM_SAMPLE).miou == ranking.curve(RANDOM_SAMPLE).miou


def test_store_under_sav_protocol_and_videos_filter(synth: DatasetConfig, fake_store: Path) -> None:
    result = evaluate_predictions(fake_store, synth, "sav", videos=["synth-001"])
    assert isinstance(result.jf, SavReport) and result.videos == ("synth-001",)
    assert 0.0 < result.global_scores()["J"] < 100.0
    assert result.ranking is not None and result.ranking.n_items == 5 * 2


def test_store_errors_and_incomplete_video(synth: DatasetConfig, synth_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    write_fake_store(synth, path, ["synth-000"])
    with pytest.raises(EvaluationError, match=r"s\.zarr: expected video 'synth-001' of the dataset"):
        evaluate_predictions(path, synth)
    with pytest.raises(EvaluationError, match="is a usam-video store; --layout davis"):
        evaluate_predictions(path, synth, videos=["synth-000"], layout="davis")
    write_fake_store(synth, path, ["synth-001"], complete=False)
    result = evaluate_predictions(path, synth)
    assert result.videos == ("synth-000",) and "incomplete" in result.skipped["synth-001"]


def test_write_evaluation_and_markdown(synth: DatasetConfig, fake_store: Path, tmp_path: Path) -> None:
    result = evaluate_predictions(fake_store, synth)
    paths = write_evaluation(result, tmp_path / "out")
    assert [p.name for p in paths] == ["evaluation.json", "ranking.png"]
    data = json.loads(paths[0].read_text())
    assert data["source_kind"] == "store" and data["global"]["J&F"] == pytest.approx(result.jf.jf_mean)
    assert data["ranking"]["oracle"]["relative_auc"] == 1.0
    assert {row["score"] for row in data["ranking"]["table"]} >= {*FAKE_SCORES[:4], "random", "oracle"}
    assert len(data["jf"]["sequences"][0]["objects"][0]["J"]) == 4
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = evaluation_markdown(result, paths[1])
    assert "| sam_iou | confidence | 1.0000 |" in markdown
    assert "](data:image/png;base64,iVBORw0KGgo" in markdown


def test_store_labelled_by_the_pipeline(synth_root: Path, tmp_path: Path, small_model_config) -> None:
    """End to end on a store the labelling pipeline wrote (small random SAM 2, random heads)."""
    from usam_video.pipeline import label_dataset

    run = make_run_config(synth_root, tmp_path / "s.zarr", ["synth-000"], small_model_config)
    assert [r.outcome for r in label_dataset(run)] == ["labelled"]
    result: EvaluationResult = evaluate_predictions(tmp_path / "s.zarr", run.dataset)
    assert isinstance(result.jf, DavisReport) and result.videos == ("synth-000",)
    ranking = result.ranking
    assert ranking is not None and ranking.n_items == 5
    from usam_video.score_registry import direction_of
    from usam_video.store import PseudoLabelStore

    stored = PseudoLabelStore.open(tmp_path / "s.zarr", "r").summary("synth-000").score_names
    assert {"sam_iou", "object_score", "task_gap", "iou_large"} <= set(stored)
    # every stored score with a registry direction is ranked; video features are not (no direction)
    ranked = [n for n in stored if direction_of(n) != "feature"]
    assert [c.name for c in ranking.curves] == [*ranked, RANDOM_SAMPLE]
    assert set(result.unranked_scores) == set(stored) - set(ranked)
    assert ranking.random.name == "random"
    assert ranking.degenerate or ranking.oracle.relative_auc == 1.0
    for name in ranked:
        auc = ranking.curve(name).relative_auc
        assert ranking.degenerate or math.isfinite(auc)


def test_detect_prediction_layout(synth: DatasetConfig, annotations: Path, tmp_path: Path) -> None:
    from usam_video.evaluation import detect_prediction_layout

    davis = copy_davis_predictions(annotations, tmp_path / "mixed", ["synth-000"])
    assert detect_prediction_layout(davis) == "davis"
    write_sav_predictions(synth, tmp_path / "mixed", ["synth-001"])
    assert detect_prediction_layout(davis, ["synth-001"]) == "sav"
    with pytest.raises(EvaluationError, match="expected one layout, found DAVIS"):
        detect_prediction_layout(davis)


def test_sav_dataset_with_its_own_annotations_as_predictions(tmp_path: Path) -> None:
    """SA-V val ships Annotations_6fps in SA-V layout, so it is itself a predictions folder."""
    from usam_video.datasets.synthetic import SyntheticVideoSpec, render_video, write_sav_frames_dataset

    late = render_video(SyntheticVideoSpec("sav_900001", 13, 64, 96, 3, seed=11), entry_frames={3: 5})
    write_sav_frames_dataset(tmp_path, [late], split="val")
    config = DatasetConfig(name="sav-val", format="sav", layout="frames", root=tmp_path, split="val")
    result = evaluate_predictions(tmp_path / "Annotations_6fps", config, "sav")
    assert result.source_kind == "sav-folder" and result.global_scores()["J&F"] == 100.0
    assert result.jf.videos[0].frames == (4, 8)  # annotated every 4th frame, first and last out
    with pytest.raises(EvaluationError, match=r"ids 1\.\.254 .* got \[0\]\. Use --protocol sav"):
        evaluate_predictions(tmp_path / "Annotations_6fps", config, "davis")
