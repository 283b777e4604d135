"""The review flows under Prefect's test harness: export, edit, import (relabelled), artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.digest_helpers import tree_digest
from tests.review.helpers import VIDEO, copy_store, edit_cvat, labelled_template, one_torch_thread, rectangle
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, Status


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


def _artifacts(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_export_and_import_flows_publish_tables(
    prefect_harness, tmp_path_factory, tmp_path: Path, synth_root: Path, small_model_config
) -> None:
    from flows.review import artifact_key, export_flow, import_flow

    template = labelled_template(tmp_path_factory, synth_root, small_model_config)
    store = copy_store(template, tmp_path / "flow-store.zarr")
    out = tmp_path / "export"
    exported = export_flow(str(store), "cvat", str(out))
    assert exported.frames == {VIDEO: 5} and (out / "manifest.json").is_file()
    assert artifact_key("export", str(store)) == "review-export-flow-store"
    [table] = _artifacts("review-export-flow-store")
    assert table.type == "table" and VIDEO in str(table.data)

    edit_cvat(out, 4, 2, rectangle(30, 40, 70, 100))
    imported = import_flow(str(store), str(out))
    assert imported.corrected == {VIDEO: 10} and [r.outcome for r in imported.relabelled] == ["labelled"]
    s = PseudoLabelStore.open(store, "r")
    np.testing.assert_array_equal(s.read_masks(VIDEO, 4)[1], rectangle(30, 40, 70, 100))
    assert s.frame_table(VIDEO).status[4, 1] == Status.CORRECTED
    assert s.frame_table(VIDEO).source[4, 1] == MaskSource.HUMAN
    [table] = _artifacts("review-import-flow-store")
    assert "labelled" in str(table.data) and "corrected" in str(table.data)

    digest = tree_digest(store)
    again = import_flow(str(store), str(out))
    assert again.corrected == {} and again.skipped == 10
    assert tree_digest(store) == digest
