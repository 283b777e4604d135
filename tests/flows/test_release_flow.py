"""The release flow under Prefect's test harness: it writes the release and publishes a table
artifact naming every video, with the risk it certified."""

from __future__ import annotations

import json
from pathlib import Path

from usam_video.release import MANIFEST, verify_release


def test_release_flow_writes_and_publishes_a_table(
    prefect_harness, micro_store: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.release import artifact_key, release_flow

    out = tmp_path / "release"
    policy = Path(__file__).resolve().parents[2] / "configs" / "release" / "default.yaml"
    outcome = release_flow(str(micro_store), "sav", str(out), policy=str(policy), max_risk=0.2, delta=0.2)
    assert verify_release(out) == [] and outcome.result.certificate is not None
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["threshold"]["chosen_by"] == "max-risk" and manifest["risk"]["max_risk"] == 0.2
    key = artifact_key(str(micro_store))
    assert key == "release-store"
    with get_client(sync_client=True) as client:
        [table] = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert table.type == "table"
    for video_id in outcome.result.frames:
        assert video_id in str(table.data)
