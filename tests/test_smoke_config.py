"""The smoke run of README (``configs/runs/davis-sample-small.yaml``) queues frames for a human, so
README's export / correct / import steps can be tried on it (issue #18, item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CONFIGS

pytestmark = pytest.mark.slow


def test_smoke_run_queues_frames_that_export_and_import_back(tmp_path: Path) -> None:
    from usam_video.config import load_run_config
    from usam_video.pipeline import export_queue, import_corrections, label_dataset
    from usam_video.store import PseudoLabelStore

    run = load_run_config(CONFIGS / "runs" / "davis-sample-small.yaml")
    store = tmp_path / "smoke.zarr"
    results = label_dataset(run.model_copy(update={"store": str(store)}))
    assert [r.outcome for r in results] == ["labelled"] * 4
    queued = PseudoLabelStore.open(store, "r").queue()
    # the budget keeps at most 3 per video; tennis has only 2 frame-objects past its prompt
    assert 4 <= len(queued) <= 12 and {e.status.label for e in queued} == {"queued_human"}

    export = export_queue(store, "png", tmp_path / "review")
    assert export.queued == len(queued) and export.frame_objects >= len(queued)
    # Unedited, every queued mask comes back as a confirmed correction and the ones shown for
    # context are left as they were (README says so).
    result = import_corrections(store, export.out, relabel=False)
    assert result.total_corrected == result.confirmed == export.queued
    assert result.not_queued == export.context and result.edited == 0
    assert PseudoLabelStore.open(store, "r").queue() == []
