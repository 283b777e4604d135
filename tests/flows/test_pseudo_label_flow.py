"""The pseudo-labelling flow under Prefect's test harness (one ephemeral server per session)."""

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_run_config
from usam_video.store import PseudoLabelStore


def write_run_yaml(tmp_path: Path, run) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run.model_dump(mode="json")))
    return path


@pytest.fixture()
def dataset(synth_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return root


def _artifacts(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_flow_labels_two_videos_with_artifacts(
    prefect_harness, dataset: Path, tmp_path: Path, small_model_config
) -> None:
    from flows.pseudo_label import pseudo_label_dataset

    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-000", "synth-001"], small_model_config)
    run = run.model_copy(update={"name": "flow-test"})
    results = pseudo_label_dataset(str(write_run_yaml(tmp_path, run)))
    assert [(r.video_id, r.outcome) for r in results] == [
        ("synth-000", "labelled"),
        ("synth-001", "labelled"),
    ]
    store = PseudoLabelStore.open(tmp_path / "s.zarr", "r")
    assert store.videos() == ["synth-000", "synth-001"] and all(store.is_complete(v) for v in store.videos())

    table = _artifacts("flow-test-summary")
    assert table and table[0].type == "table"
    assert "synth-001" in str(table[0].data) and "mean_predicted_iou" in str(table[0].data)
    row = (
        next(r for r in table[0].data if r["video_id"] == "synth-001")
        if isinstance(table[0].data, list)
        else None
    )
    if row is not None:
        assert row["objects"] == 2 and row["min_predicted_iou"] <= row["mean_predicted_iou"]
    assert "min_predicted_iou" in str(table[0].data) and "queued_by_reason" in str(table[0].data)
    plots = _artifacts("flow-test-scores")
    assert plots and plots[0].type == "markdown" and "data:image/png;base64," in plots[0].data
    progress = _artifacts("flow-test-progress")
    assert progress and progress[0].type == "progress" and float(progress[0].data) == pytest.approx(100.0)


def test_failed_video_is_reported_and_others_complete(
    prefect_harness, dataset: Path, tmp_path: Path, small_model_config
) -> None:
    from flows.pseudo_label import pseudo_label_dataset

    (dataset / "JPEGImages/480p/synth-000/00003.jpg").unlink()
    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-000", "synth-001"], small_model_config)
    results = {r.video_id: r for r in pseudo_label_dataset(str(write_run_yaml(tmp_path, run)))}
    assert results["synth-000"].outcome == "failed" and "00003.jpg" in results["synth-000"].error
    assert results["synth-001"].outcome == "labelled"
    store = PseudoLabelStore.open(tmp_path / "s.zarr", "r")
    assert store.videos() == ["synth-001"]


def test_bad_input_is_not_retried(prefect_harness) -> None:
    from prefect.states import Failed

    from flows.common import retry_unless_bad_input
    from usam_video.errors import FrameReadError

    assert retry_unless_bad_input(None, None, Failed(data=FrameReadError("x.jpg: bad"))) is False
    assert retry_unless_bad_input(None, None, Failed(data=RuntimeError("CUDA out of memory"))) is True


def test_gpu_limit_path_creates_and_holds_the_limit(
    prefect_harness, dataset: Path, tmp_path: Path, small_model_config
) -> None:
    """The CUDA path (forced here on CPU): a strict 'gpu' limit is created, then acquired per video."""
    from prefect.client.orchestration import get_client

    from flows.common import GPU_LIMIT_NAME
    from flows.pseudo_label import pseudo_label_dataset

    run = make_run_config(dataset, tmp_path / "s.zarr", ["synth-000"], small_model_config)
    results = pseudo_label_dataset(str(write_run_yaml(tmp_path, run)), use_gpu_limit=True)
    assert results[0].outcome == "labelled"
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(GPU_LIMIT_NAME)
    assert limit.limit == run.gpu_concurrency and limit.active_slots == 0


def test_review_pages_only_for_the_most_uncertain_videos(
    prefect_harness, dataset: Path, tmp_path: Path, small_model_config
) -> None:
    """The size cap: ``usam-video run --report-videos 1`` writes one video page (a timeline and a
    worst-frame strip embedded, under the page cap), the overview names it, and every video keeps
    a table row."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from typer.testing import CliRunner

    from flows.pseudo_label import video_artifact_key
    from usam_video.cli import app
    from usam_video.pipeline.report import MAX_PAGE_BYTES, build_report

    videos = ["synth-000", "synth-001", "synth-002"]
    run = make_run_config(dataset, tmp_path / "s.zarr", videos, small_model_config)
    run = run.model_copy(update={"name": "cap-test"})
    result = CliRunner().invoke(app, ["run", str(write_run_yaml(tmp_path, run)), "--report-videos", "1"])
    assert result.exit_code == 0, result.output
    worst = build_report(tmp_path / "s.zarr", ground_truth=False).videos[0].video_id

    table = _artifacts("cap-test-summary")[0]
    with get_client(sync_client=True) as client:
        of_run = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[table.flow_run_id]))
        )
    pages = sorted(a.key for a in of_run if a.key and a.key.startswith("cap-test-video-"))
    assert pages == [video_artifact_key("cap-test", worst)] == [f"cap-test-video-{worst}"]
    page = next(a for a in of_run if a.key == pages[0])
    assert page.type == "markdown" and len(page.data.encode()) < MAX_PAGE_BYTES
    assert "data:image/png;base64," in page.data and "data:image/jpeg;base64," in page.data

    data = table.data if isinstance(table.data, list) else json.loads(table.data)  # JSON text in v3
    rows = {row["video_id"]: row for row in data}
    assert sorted(rows) == videos  # a row for every video, its page key or ""
    assert {v: row["review_page"] for v, row in rows.items()} == {
        v: (pages[0] if v == worst else "") for v in videos
    }
    assert rows[worst]["uncertainty_rank"] == 1 and rows[worst]["jf"] is not None
    assert "jf_copy_first_mask" in rows[worst] and "J&F" in table.description
    overview = _artifacts("cap-test-review")[0]
    assert pages[0] in overview.data and "2 less uncertain videos have no page" in overview.data


def test_video_artifact_keys_are_valid_and_distinct() -> None:
    from flows.pseudo_label import video_artifact_key

    keys = {video_artifact_key("run", v) for v in ("a_b", "a-b", "A-B", "x/y")}
    assert len(keys) == 4 and all(re.fullmatch(r"[a-z0-9-]+", k) for k in keys)
    assert video_artifact_key("run", "bmx-trees") == "run-video-bmx-trees"


def test_a_sharded_run_labels_and_ranks_as_a_run_of_one_task_per_video(
    prefect_harness, dataset: Path, tmp_path: Path, small_model_config
) -> None:
    """Shards of 2 videos (a run of thousands gets them by default): the same rows, masks and
    review ranking as one task per video, from digests made in the tasks; a broken video fails
    alone inside its shard."""
    from flows.pseudo_label import pseudo_label_dataset

    (dataset / "JPEGImages/480p/synth-000/00003.jpg").unlink()
    ids = ["synth-000", "synth-001", "synth-002"]
    each = make_run_config(dataset, tmp_path / "each.zarr", ids, small_model_config)
    each = each.model_copy(update={"name": "each-run"})
    sharded = each.model_copy(update={"name": "shard-run", "store": str(tmp_path / "shards.zarr")})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    by_video = pseudo_label_dataset(str(write_run_yaml(tmp_path / "a", each)))
    by_shard = pseudo_label_dataset(str(write_run_yaml(tmp_path / "b", sharded)), shard_size=2)

    def rows(results):
        return [(r.video_id, r.outcome, r.frames, r.accepted, r.queued_human) for r in results]

    assert rows(by_shard) == rows(by_video)
    assert by_shard[0].outcome == "failed" and "00003.jpg" in by_shard[0].error
    a = PseudoLabelStore.open(tmp_path / "each.zarr", "r")
    b = PseudoLabelStore.open(tmp_path / "shards.zarr", "r")
    assert b.videos() == ["synth-001", "synth-002"] and all(b.is_complete(v) for v in b.videos())
    for video in b.videos():
        for frame in range(b.frame_table(video).status.shape[0]):
            assert (a.read_masks(video, frame) == b.read_masks(video, frame)).all()

    def ranks(run_name: str) -> dict[str, tuple]:
        table = _artifacts(f"{run_name}-summary")[0].data
        data = json.loads(table) if isinstance(table, str) else table
        return {r["video_id"]: (r["uncertainty_rank"], r["uncertainty"]) for r in data}

    assert ranks("shard-run") == {k: v for k, v in ranks("each-run").items() if k != "synth-000"} | {
        "synth-000": (None, None)
    }
    assert _artifacts("shard-run-review") and not _artifacts("shard-run-scores")  # no histograms sharded


def test_a_video_claimed_by_a_host_that_died_is_labelled_once_its_lease_lapses(
    prefect_harness, dataset: Path, tmp_path: Path, small_model_config, monkeypatch
) -> None:
    """A worker killed on another host leaves its claim until the lease ends; the task given to
    another worker finds it held and skips it. The run waits the claim out and labels the video,
    so no video is missing at the end."""
    import flows.pseudo_label as module

    waited: list[list[str]] = []

    def wait_for_claims(store, video_ids, **kwargs):
        waited.append(list(video_ids))
        return real_wait(store, video_ids, **kwargs)

    real_wait = module.wait_for_claims
    monkeypatch.setattr(module, "wait_for_claims", wait_for_claims)
    store_path = tmp_path / "s.zarr"
    # A lease longer than the first pass takes to reach the video, so that it finds it held.
    assert PseudoLabelStore.open(store_path).claim("synth-001", owner="dead-host:99:1", lease_s=10) is None
    run = make_run_config(dataset, store_path, ["synth-000", "synth-001"], small_model_config)
    results = module.pseudo_label_dataset(str(write_run_yaml(tmp_path, run)))
    assert waited == [["synth-001"]]
    assert [(r.video_id, r.outcome) for r in results] == [
        ("synth-000", "labelled"),
        ("synth-001", "labelled"),
    ]
    store = PseudoLabelStore.open(store_path, "r")
    assert all(store.is_complete(v) for v in ["synth-000", "synth-001"]) and store.claims() == []


def test_a_sharded_run_budget_counts_the_corrections_of_videos_without_a_queue(monkeypatch) -> None:
    """Review rounds: the run budget is a total, so the corrections in videos that queued
    nothing for humans (whose tables a sharded run does not read back) are subtracted too."""
    import flows.pseudo_label as module
    from usam_video.config import HumanBudget, PolicyConfig
    from usam_video.pipeline.shards import DigestedVideo

    seen: dict[str, object] = {}

    def apply_run_budget(run, store, videos, *, reserved=0):
        seen.update(videos=[v.video_id for v in videos], reserved=reserved)
        return list(videos), 0

    monkeypatch.setattr(module, "apply_run_budget", apply_run_budget)
    # Rows with a plan, as the store's tables would give them.
    monkeypatch.setattr(
        module, "stored_videos", lambda store, rows: [DigestedVideo(r.video_id, r.outcome) for r in rows]
    )
    budget = HumanBudget(max_per_run=10, rounds=2)
    run = type("Run", (), {"policy": PolicyConfig(name="p", human_budget=budget)})()
    results = [
        DigestedVideo("a", "labelled", queued_human=2, corrected=1),
        DigestedVideo("b", "labelled", queued_human=0, corrected=3),
        DigestedVideo("c", "skipped", queued_human=0, corrected=4),
    ]
    module._sharded_budget(run, None, results)
    assert seen == {"videos": ["a"], "reserved": 7}  # b's and c's corrections; a counts its own
