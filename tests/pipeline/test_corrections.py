"""Human corrections: kept with history, fed back into SAM 2 as conditioning frames, never lost."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_run_config
from tests.digest_helpers import tree_digest
from usam_video.errors import InputError
from usam_video.pipeline import label_dataset, relabel_videos
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status


@pytest.fixture()
def labelled(synth_root: Path, tmp_path: Path, small_model_config):
    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    run = make_run_config(data, tmp_path / "s.zarr", ["synth-001"], small_model_config)
    label_dataset(run)
    return run


def box_mask(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_correction_is_conditioning_and_survives_relabel(labelled) -> None:
    store = PseudoLabelStore.open(labelled.store_path)
    before = [store.read_masks("synth-001", t) for t in range(6)]
    old_revision = int(store.frame_table("synth-001").revision[2, 0])
    correction = box_mask(96, 128, 10, 10, 60, 70)
    store.replace_masks([MaskUpdate("synth-001", 2, 1, correction, MaskSource.HUMAN, Status.CORRECTED)])
    table = store.frame_table("synth-001")
    assert table.status[2, 0] == Status.CORRECTED and table.source[2, 0] == MaskSource.HUMAN
    assert table.revision[2, 0] > old_revision
    history = store.history("synth-001")
    assert len(history) == 1 and history[0].frame_index == 2 and history[0].object_id == 1
    np.testing.assert_array_equal(store.history_mask("synth-001", 0), before[2][0])

    [result] = relabel_videos(labelled.store_path, ["synth-001"])
    assert result.outcome == "labelled"
    store = PseudoLabelStore.open(labelled.store_path)
    table = store.frame_table("synth-001")
    np.testing.assert_array_equal(store.read_masks("synth-001", 2)[0], correction)  # exactly the human mask
    assert table.status[2, 0] == Status.CORRECTED and table.source[2, 0] == MaskSource.HUMAN
    # the following frames were propagated again with the correction in SAM 2's memory
    assert any(not np.array_equal(store.read_masks("synth-001", t)[0], before[t][0]) for t in range(3, 6))
    assert len(store.history("synth-001")) == 1  # history survives relabelling

    # a later correction of the same frame-object replaces it; both stay in the history
    second = box_mask(96, 128, 20, 20, 50, 50)
    store.replace_masks([MaskUpdate("synth-001", 2, 1, second, MaskSource.HUMAN, Status.CORRECTED)])
    history = store.history("synth-001")
    assert len(history) == 2 and history[1].source == MaskSource.HUMAN
    np.testing.assert_array_equal(store.history_mask("synth-001", 1), correction)
    relabel_videos(labelled.store_path, ["synth-001"])
    np.testing.assert_array_equal(
        PseudoLabelStore.open(labelled.store_path).read_masks("synth-001", 2)[0], second
    )


def test_first_frame_prompt_is_stored_exactly(labelled) -> None:
    from usam_video.datasets import open_dataset

    store = PseudoLabelStore.open(labelled.store_path, "r")
    prompts = open_dataset(labelled.dataset).prompts("synth-001")
    table = store.frame_table("synth-001")
    for o, p in enumerate(prompts):
        np.testing.assert_array_equal(store.read_masks("synth-001", 0)[o], p.mask)
        assert table.source[0, o] == MaskSource.PROMPT and table.status[0, o] == Status.ACCEPTED


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (
            MaskUpdate("nope", 1, 1, np.zeros((96, 128), bool), MaskSource.HUMAN, Status.CORRECTED),
            "video of the store",
        ),
        (
            MaskUpdate("synth-001", 9, 1, np.zeros((96, 128), bool), MaskSource.HUMAN, Status.CORRECTED),
            "frame in 0..5",
        ),
        (
            MaskUpdate("synth-001", 1, 7, np.zeros((96, 128), bool), MaskSource.HUMAN, Status.CORRECTED),
            "object in",
        ),
        (
            MaskUpdate("synth-001", 1, 1, np.zeros((48, 64), bool), MaskSource.HUMAN, Status.CORRECTED),
            "96x128",
        ),
    ],
)
def test_a_bad_update_rejects_the_whole_batch_and_leaves_the_store_byte_identical(
    labelled, update, message
) -> None:
    good = MaskUpdate("synth-001", 1, 1, np.ones((96, 128), bool), MaskSource.HUMAN, Status.CORRECTED)
    digest = tree_digest(labelled.store_path)
    with pytest.raises(InputError, match=message):
        PseudoLabelStore.open(labelled.store_path).replace_masks([good, update])
    assert tree_digest(labelled.store_path) == digest


def test_an_interrupted_relabel_keeps_the_corrections(labelled, monkeypatch) -> None:
    store = PseudoLabelStore.open(labelled.store_path)
    correction = box_mask(96, 128, 10, 10, 60, 70)
    store.replace_masks([MaskUpdate("synth-001", 2, 1, correction, MaskSource.HUMAN, Status.CORRECTED)])

    from usam_video.store.zarr_store import VideoWriter

    def crash(self, *args, **kwargs):  # the process dies while writing frames
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(VideoWriter, "write_frame", crash)
        with pytest.raises(KeyboardInterrupt):
            relabel_videos(labelled.store_path, ["synth-001"])
    store = PseudoLabelStore.open(labelled.store_path)
    assert not store.is_complete("synth-001")
    [carried] = store.corrections("synth-001")
    assert (carried.frame_index, carried.object_id) == (2, 1)
    np.testing.assert_array_equal(carried.mask, correction)
    relabel_videos(labelled.store_path, ["synth-001"])
    store = PseudoLabelStore.open(labelled.store_path, "r")
    np.testing.assert_array_equal(store.read_masks("synth-001", 2)[0], correction)
    assert store.frame_table("synth-001").status[2, 0] == Status.CORRECTED
