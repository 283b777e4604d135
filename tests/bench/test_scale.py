"""The scale benchmark at a small size: generated SA-V videos labelled into one store on a real
S3 endpoint (moto's server) by Dask worker processes, one of them killed with kill -9 in the
middle of a video; every video is written once, none is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from usam_video.bench import scale


def test_count_events_finds_finished_writes_and_videos_in_flight() -> None:
    done, open_by_pid = scale.count_events(
        [
            "start a 1 0.1",
            "done a 1 0.2",
            "start b 1 0.3",
            "start c 2 0.3",
            "done c 2 0.4",
            "start c 3 0.5",
            "done c 3 0.6",
            "cut",
        ]
    )
    assert done == {"a": 1, "c": 2} and open_by_pid == {1: {"b"}, 2: set(), 3: set()}


@pytest.mark.slow
def test_small_run_on_s3_with_a_kill_writes_every_video_exactly_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = scale.main(
        [
            "--small",
            "--sizes",
            "8",
            "--workers",
            "2",
            "--kills",
            "1",
            "--shard-size",
            "4",
            "--report-videos",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    (size,) = figures["sizes"]
    assert size["videos"] == 8 and size["source"] == "copy" and size["shard_size"] == 4
    assert size["kills"] == 1  # a worker was killed while it wrote a video
    assert size["duplicates"] == 0 and size["missing"] == 0 and size["failed"] == 0
    assert size["flow_exit_code"] == 0
    assert size["chunk_writes_per_video"] > 0 and size["requests_per_video"] > size["chunk_writes_per_video"]
    assert size["requests_by_kind"]["claims"] > 0  # claims went to the endpoint too
    assert size["flow_peak_rss_bytes"] > 0
    assert size["orchestration_cpu_s_per_video"] > size["flow_cpu_s_per_video"] > 0  # the server's CPU too
    assert size["inspect_s"] > 0 and size["queue_s"] > 0
    assert "duplicates 0 missing 0" in capsys.readouterr().out
    assert _processes_under(tmp_path) == []  # no server, worker or moto left behind (a kill -9 did)
    # the dataset is kept for the next run, marked as the benchmark's own
    assert (tmp_path / "dataset-8x4" / ".usam-scale-dataset.json").exists()


def test_the_benchmark_never_writes_into_a_folder_it_did_not_make(tmp_path: Path) -> None:
    foreign = tmp_path / "dataset-3x4"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="expected a folder the scale benchmark wrote"):
        scale.write_scale_dataset(foreign, 3, 4)
    assert (foreign / "notes.txt").read_text() == "mine"


def _processes_under(folder: Path) -> list[str]:
    """Command lines of live processes whose environment or command line names ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if str(folder) in (proc / "environ").read_bytes().decode(errors="replace") or str(folder) in (
                proc / "cmdline"
            ).read_bytes().decode(errors="replace"):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # gone, or not ours to read
    return found
