"""Shards of a run: their size, their cut, and a shard's per-video retries (the flow's shard
task and a run in shards are in tests/flows/test_pseudo_label_flow.py)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from usam_video.errors import DatasetError, WriteError
from usam_video.pipeline import shards as shards_module
from usam_video.pipeline.label import SKIPPED_COMPLETE, SKIPPED_HELD
from usam_video.pipeline.shards import MAX_TASKS, SHARD_FROM, label_shard, shard_size_for, shards
from usam_video.store import PseudoLabelStore
from usam_video.types import VideoResult


def test_one_video_a_task_up_to_the_threshold_then_at_most_max_tasks() -> None:
    assert shard_size_for(1) == shard_size_for(SHARD_FROM) == 1
    assert shard_size_for(SHARD_FROM + 1) == 2
    assert shard_size_for(50_000) == 50 and 50_000 / shard_size_for(50_000) <= MAX_TASKS
    assert shard_size_for(50_001) == 51


def test_shards_keep_order_and_every_video() -> None:
    ids = [f"v{i}" for i in range(7)]
    assert shards(ids, 3) == [["v0", "v1", "v2"], ["v3", "v4", "v5"], ["v6"]]
    assert shards(ids, 10) == [ids] and shards([], 2) == []
    with pytest.raises(ValueError, match="expected at least 1 video, got 0"):
        shards(ids, 0)


def test_a_shard_retries_transient_errors_never_bad_input_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    failures = {"flaky": [RuntimeError("connection reset")], "bad": [DatasetError("bad.json: no masklet")]}
    failures["full"] = [WriteError("no space"), RuntimeError("never reached")]
    failures["down"] = [RuntimeError("down")] * 3

    def label_video(context, video_id, store):  # the label loop's signature
        calls.append(video_id)
        if failures.get(video_id):
            raise failures[video_id].pop(0)
        return VideoResult(video_id, "skipped")

    monkeypatch.setattr(shards_module, "label_video", label_video)
    context = SimpleNamespace(store=PseudoLabelStore.open(tmp_path / "s.zarr"))
    results = label_shard(context, ["flaky", "bad", "full", "down", "fine"], retries=2, retry_delay_s=0)

    assert calls == ["flaky", "flaky", "bad", "full", "down", "down", "down", "fine"]
    assert [(r.video_id, r.outcome) for r in results] == [
        ("flaky", "skipped"),
        ("bad", "failed"),
        ("full", "failed"),
        ("down", "failed"),
        ("fine", "skipped"),
    ]
    assert results[1].error == "DatasetError: bad.json: no masklet"
    assert results[3].error == "RuntimeError: down"


def test_wait_for_claims_returns_once_leases_lapse_or_at_the_timeout(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    assert store.claim("lapsing", owner="gone-host:7:1", lease_s=0.5) is None
    assert store.claim("renewed", owner="busy-host:8:1", lease_s=600) is None
    assert shards_module.wait_for_claims(store, ["lapsing"], timeout_s=10, poll_s=0.1) == []
    started = time.monotonic()
    held = shards_module.wait_for_claims(store, ["lapsing", "renewed", "free"], timeout_s=0.5, poll_s=0.1)
    assert held == ["renewed"] and time.monotonic() - started >= 0.5


def test_wait_for_claims_stops_waiting_for_a_writer_that_renews_its_lease(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    assert store.claim("busy", owner="busy-host:8:1", lease_s=0.6) is None
    with store.keep_claim("busy", owner="busy-host:8:1", lease_s=0.6):  # renews every 0.2 s
        started = time.monotonic()
        held = shards_module.wait_for_claims(store, ["busy"], timeout_s=30, poll_s=0.1)
    assert held == ["busy"] and time.monotonic() - started < 10  # proven live, not waited out


def test_held_elsewhere_names_only_videos_skipped_for_another_writer() -> None:
    results = [
        VideoResult("a", "skipped", error=f"{SKIPPED_HELD} host-b:1:1"),
        VideoResult("b", "skipped", error=SKIPPED_COMPLETE),
        VideoResult("c", "labelled"),
        VideoResult("d", "failed", error=f"{SKIPPED_HELD} (a failure that says so is not a skip)"),
    ]
    assert shards_module.held_elsewhere(results) == ["a"]
