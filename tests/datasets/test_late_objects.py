"""Objects that enter after the first frame of a DAVIS-layout dataset: under DAVIS semantics
(the default) they are named as left out by run and evaluate; with ``late_objects`` they are
prompted where they enter and evaluated from there. A frame without ground truth in the middle
is named too."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import make_run_config
from usam_video.config import DatasetConfig, PolicyConfig
from usam_video.datasets import open_dataset
from usam_video.palette import read_palette_png, write_palette_png
from usam_video.pipeline import label_dataset, unprompted_warnings
from usam_video.pipeline.evaluate import evaluate_predictions
from usam_video.store import PseudoLabelStore
from usam_video.types import Status

VIDEO = "synth-001"  # 2 objects on 6 frames


@pytest.fixture()
def late_root(synth_root: Path, tmp_path: Path) -> Path:
    """synth-001 with object 2 erased from frames 0-2: it enters at frame 3."""
    root = Path(shutil.copytree(synth_root, tmp_path / "data"))
    for t in range(3):
        path = root / "Annotations" / "480p" / VIDEO / f"{t:05d}.png"
        labels = read_palette_png(path)
        write_palette_png(path, np.where(labels == 2, 0, labels).astype(np.uint8))
    return root


def _config(root: Path, late: bool) -> DatasetConfig:
    return DatasetConfig(name="late", root=root, videos=[VIDEO], late_objects=late)


def test_davis_semantics_name_the_objects_left_out(late_root: Path) -> None:
    reader = open_dataset(_config(late_root, late=False))
    assert [p.object_id for p in reader.prompts(VIDEO)] == [1]
    assert reader.unprompted_objects(VIDEO) == {2: 3}
    [warning] = unprompted_warnings(SimpleNamespace(reader=reader), [VIDEO])
    assert "2 (frame 3)" in warning and "late_objects: true" in warning


def test_late_objects_are_prompted_tracked_and_evaluated_from_where_they_enter(
    late_root: Path, tmp_path: Path, small_model_config
) -> None:
    dataset = _config(late_root, late=True)
    reader = open_dataset(dataset)
    assert [(p.object_id, p.frame_index) for p in reader.prompts(VIDEO)] == [(1, 0), (2, 3)]
    assert reader.unprompted_objects(VIDEO) == {}
    store = tmp_path / "s.zarr"
    run = make_run_config(late_root, store, [VIDEO], small_model_config, PolicyConfig())
    run = run.model_copy(update={"dataset": dataset})
    [result] = label_dataset(run)
    assert result.outcome == "labelled"
    status = PseudoLabelStore.open(store, "r").frame_table(VIDEO).status
    assert (status[:3, 1] == Status.NOT_STARTED).all() and (status[3:, 1] != Status.NOT_STARTED).all()
    evaluation = evaluate_predictions(store, dataset, "davis", [VIDEO], random_seed=None)
    assert sorted(o.object_id for o in evaluation.jf.objects) == [1, 2] and evaluation.notes == ()
    strict = evaluate_predictions(store, _config(late_root, late=False), "davis", [VIDEO], random_seed=None)
    assert [o.object_id for o in strict.jf.objects] == [1]
    assert any("2 (frame 3)" in n and "not evaluated" in n for n in strict.notes)


def test_a_missing_middle_frame_is_named(synth_root: Path, tmp_path: Path, small_model_config) -> None:
    root = Path(shutil.copytree(synth_root, tmp_path / "data"))
    (root / "Annotations" / "480p" / VIDEO / "00004.png").unlink()
    store = tmp_path / "s.zarr"
    label_dataset(make_run_config(root, store, [VIDEO], small_model_config, PolicyConfig()))
    result = evaluate_predictions(
        store, DatasetConfig(name="gap", root=root, videos=[VIDEO]), "davis", [VIDEO]
    )
    assert any("no ground truth on frames 4" in n for n in result.notes)
    assert result.as_dict()["notes"] == list(result.notes)
