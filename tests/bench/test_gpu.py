"""The GPU benchmark: refuses clearly without CUDA, runs every arm on the CPU with --cpu-smoke,
counts syncs from every thread, and runs its small mode on a GPU."""

import json
import math
import threading
import warnings
from pathlib import Path

import pytest
import torch

from usam_video.bench import gpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_refuses_without_cuda_before_doing_anything() -> None:
    with pytest.raises(gpu.CudaUnavailable, match="expected a CUDA device, found none"):
        gpu.main(["--small"])
    assert issubclass(gpu.CudaUnavailable, RuntimeError)


def test_cpu_smoke_runs_every_arm_and_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu.json"
    figures = gpu.main(["--cpu-smoke", "--json", str(out)])
    assert json.loads(out.read_text())["benchmark"] == "gpu"
    cases = [(r["variant"], r["source"], r["objects"]) for r in figures["results"]]
    assert cases == [("eager", s, n) for s in ("jpeg", "mp4") for n in (1, 2)]
    for row in figures["results"]:
        assert row["frames"] == 3
        assert set(row["median_fps"]) == set(gpu.ARMS)
        assert all(v > 0 and math.isfinite(v) for v in row["median_fps"].values())
        assert row["pipeline_over_bare"] > 0
        assert row["syncs_per_frame"] == dict.fromkeys(gpu.ARMS)  # n/a on the CPU
        assert row["extra_syncs_per_frame"] is None
        assert row["peak_gpu_bytes"] == dict.fromkeys(gpu.ARMS)
        host = row["host_per_frame"]
        assert host["pipeline"]["finisher_cpu_ms"] > 0 and host["pipeline"]["writer_cpu_ms"] > 0
        assert host["bare"]["finisher_cpu_ms"] == host["bare_copy"]["finisher_cpu_ms"] == 0
        assert all(host[arm]["caller_cpu_ms"] > 0 for arm in gpu.ARMS)
    assert figures["settings"]["random_weights"] and figures["settings"]["cpu_smoke"]
    assert len(figures["goals"]) == 2 * len(figures["results"])
    assert all(goal["met"] is None for goal in figures["goals"])
    printed = capsys.readouterr().out
    assert "weights: RANDOM" in printed and "understated" in printed
    assert "host time per frame" in printed and "finisher CPU" in printed
    goal_lines = [line for line in printed.splitlines() if line.startswith("goal ")]
    assert len(goal_lines) == 8 and all(line.endswith("-> NOT MEASURED") for line in goal_lines)


def test_cpu_smoke_refuses_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        gpu.main(["--cpu-smoke", "--checkpoint", str(tmp_path / "x.pt")])


def test_sync_counter_counts_sync_warnings_of_every_thread() -> None:
    """The pipeline may sync on worker threads: their warnings must land in the same count."""

    def sync() -> None:
        warnings.warn(gpu.SYNC_WARNING, UserWarning, stacklevel=1)

    with pytest.warns(UserWarning, match="unrelated"), gpu.SyncCounter(cuda=False) as counter:
        sync()
        sync()  # same location twice: "always", not "once per location"
        worker = threading.Thread(target=sync)
        worker.start()
        worker.join()
        warnings.warn("unrelated", UserWarning, stacklevel=1)  # re-issued, not counted
    assert counter.count == 3


@pytest.mark.gpu
def test_small_mode_on_cuda() -> None:
    figures = gpu.main(["--small"])
    cases = [(r["variant"], r["source"], r["resolution"], r["objects"]) for r in figures["results"]]
    assert cases == [("eager", s, "480p", n) for s in ("jpeg", "mp4") for n in (1, 8)]
    for row in figures["results"]:
        assert row["frames"] == 8
        assert all(v > 0 and math.isfinite(v) for v in row["median_fps"].values())
        assert 0 < row["pipeline_over_bare"] < 10
        assert all(v > 0 for v in row["peak_gpu_bytes"].values())
        syncs = row["syncs_per_frame"]
        assert all(v is not None and v >= 0 for v in syncs.values())
        # every frame's masks copied to the host: at least one more sync per frame
        assert syncs["bare_copy"] >= syncs["bare"] + 0.9
        assert row["extra_syncs_per_frame"] == pytest.approx(syncs["pipeline"] - syncs["bare"])
        assert row["host_per_frame"]["pipeline"]["finisher_cpu_ms"] > 0
    assert all(goal["met"] in (True, False) for goal in figures["goals"])
