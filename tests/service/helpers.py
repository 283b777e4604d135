"""What the service tests share: the server handle, run configs, store comparison, artifacts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tests.conftest import REPO_ROOT, make_run_config
from usam_video.store import PseudoLabelStore

__all__ = [
    "USAM_VIDEO",
    "PREFECT",
    "VIDEOS",
    "FRAMES",
    "ARTIFACTS_DIR",
    "ServerHandle",
    "free_port",
    "run_labelling",
    "write_run_yaml",
    "copy_store",
    "LABEL_ARRAYS",
    "stored_labels",
    "assert_same_labels",
    "file_times",
    "summary_rows",
    "outcomes",
]

USAM_VIDEO = Path(sys.executable).with_name("usam-video")
PREFECT = Path(sys.executable).with_name("prefect")
VIDEOS = ["synth-000", "synth-001", "synth-002"]
FRAMES = 12
# Screenshots and page dumps of the browser test stay here (build/ is git-ignored).
ARTIFACTS_DIR = REPO_ROOT / "build" / "test-artifacts" / "service"


@dataclass(frozen=True)
class ServerHandle:
    """A running local Prefect server."""

    port: int
    home: Path
    log: Path
    env: dict[str, str]  # for subprocesses: API and UI URLs, PREFECT_HOME, analytics off

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def settings(self) -> Iterator[None]:
        """In-process Prefect clients use this server inside the block. (Flows run in-process
        use the session's ``prefect_harness`` instead: its event worker, which reports task runs,
        stays bound to the harness's server.)"""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            yield


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: ``usam-video run`` options of a run whose review pages no test looks at (they cost about a
#: second of CPU each; the reference run's are checked in the browser).
NO_PAGES = ("--report-videos", "0")


def run_labelling(
    config: Path, server: ServerHandle, options: Sequence[str] = NO_PAGES
) -> subprocess.CompletedProcess[str]:
    """``usam-video run CONFIG [options]`` against ``server``, to its end (10 min at most);
    asserts exit 0 and returns the finished process (its output captured)."""
    done = subprocess.run(
        [str(USAM_VIDEO), "run", str(config), *options],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def write_run_yaml(
    path: Path,
    dataset_root: Path,
    store: str,
    name: str,
    small_model_config: Any,
    videos: Sequence[str] | None = None,
) -> Path:
    """A run config over the generated dataset with the small random model and random heads."""
    run = make_run_config(dataset_root, Path("unused"), list(videos or VIDEOS), small_model_config)
    data = run.model_dump(mode="json")
    data.update({"name": name, "store": store})
    path.write_text(yaml.safe_dump(data))
    return path


def copy_store(source: Path, target: Path, without: Sequence[str] = ()) -> Path:
    """A file copy of a store, less the groups of the videos in ``without``."""
    shutil.copytree(source, target, copy_function=shutil.copy2)
    for video in without:
        shutil.rmtree(target / "videos" / video)
    return target


# What must be identical between two runs of the same config, array for array, `revision`
# included (each video counts its own write generations, so neither a kill and resume nor two
# workers sharing a store changes them). Left out:
# - provenance `created_at` (the wall-clock time of the write) and `run_config` (it holds the
#   run's name and store path, which differ by design; the `fingerprint`, compared, covers the
#   config that determines the labels).
LABEL_ARRAYS = ("masks", "scores", "status", "reason", "candidate_scores", "source", "revision")


def stored_labels(store: str | Path) -> dict[str, dict[str, Any]]:
    """Per video: its attributes that must match and its label arrays (see ``LABEL_ARRAYS``)."""
    opened = PseudoLabelStore.open(store, mode="r")
    out: dict[str, dict[str, Any]] = {}
    for video in opened.videos():
        summary = opened.summary(video)
        table = opened.frame_table(video)
        provenance = {k: v for k, v in summary.provenance.items() if k not in ("created_at", "run_config")}
        out[video] = {
            "complete": summary.complete,
            "fingerprint": summary.fingerprint,
            "object_ids": summary.object_ids,
            "score_names": summary.score_names,
            "reasons": table.reasons,
            "provenance": provenance,
            "masks": np.stack([opened.read_masks(video, t) for t in range(summary.num_frames)]),
            "scores": table.scores,
            "status": table.status,
            "reason": table.reason,
            "candidate_scores": table.candidate_scores,
            "source": table.source,
            "revision": table.revision,
        }
    return out


def assert_same_labels(got: str | Path, expected: str | Path, videos: Sequence[str] | None = None) -> None:
    """Every video of both stores (or of ``videos`` in ``expected``), complete, with equal
    attributes and arrays (NaN == NaN)."""
    a, b = stored_labels(got), stored_labels(expected)
    if videos is not None:
        b = {video: b[video] for video in videos}
    assert sorted(a) == sorted(b), f"videos {sorted(a)} != {sorted(b)}"
    for video in b:
        assert a[video]["complete"] and b[video]["complete"], video
        for key, value in b[video].items():
            if key in LABEL_ARRAYS and value is not None:
                np.testing.assert_array_equal(a[video][key], value, err_msg=f"{video}/{key}")
            else:
                assert a[video][key] == value, f"{video}: {key} differs"


def file_times(folder: Path) -> dict[str, int]:
    """``mtime_ns`` of every file under ``folder`` by relative path."""
    return {
        str(Path(root, name).relative_to(folder)): os.stat(Path(root, name)).st_mtime_ns
        for root, _, names in os.walk(folder)
        for name in names
    }


def summary_rows(run_name: str, server: ServerHandle | None = None) -> dict[str, list[dict[str, Any]]]:
    """The rows of every ``<run_name>-summary`` table artifact, by flow run id, on ``server``
    (runs of subprocesses), or on the API of the current settings (in-process runs under the
    session's ``prefect_harness``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with server.settings() if server is not None else contextlib.nullcontext():
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"{run_name}-summary"]))
            )
    rows: dict[str, list[dict[str, Any]]] = {}
    for artifact in artifacts:
        data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
        rows[str(artifact.flow_run_id)] = list(data)
    return rows


def outcomes(rows: list[dict[str, Any]]) -> dict[str, str]:
    """video id -> outcome of one run's summary rows."""
    return {row["video_id"]: row["outcome"] for row in rows}
