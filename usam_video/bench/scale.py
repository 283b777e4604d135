"""Scale: many videos labelled exactly once into one object store by many worker processes.

An SA-V-shaped dataset (``<video>.mp4`` + ``<video>_manual.json``) of ``N`` small generated
videos is labelled by ``usam-video run --task-runner dask --dask-address ...`` into one store on
an S3 endpoint (moto's server, a process of its own), by ``K`` Dask worker processes (a
``LocalCluster`` in a process of its own, like a cluster on other hosts). Every worker writes as
its own owner (``host:pid:thread``). While the run goes on, random workers get a ``kill -9`` in
the middle of a video; Dask's nanny starts a new worker, and Dask gives the killed task to a
worker again.

Mask sources. ``micro`` is the project's trained SAM 2 with its heads and the trained policy:
the real label loop. ``copy`` (for sizes above 10,000 videos, where micro would take a day on a
CPU) stands in for the propagation only: every frame gets the first frame's masks and constant
scores, written through the same :class:`~usam_video.store.VideoWriter` into the same arrays,
inside the same claim, lease renewal, skip and release of :func:`usam_video.pipeline.label_video`
(the stand-in replaces the claimed part of the loop, in the workers only). Each video then waits
``--frame-delay`` seconds a frame, so that a kill lands in the middle of a video.

Figures, per N:

* ``duplicates``: videos written to the end more than once (every worker appends ``start`` and
  ``done`` lines to an events file; a ``done`` is a finished write); ``missing``: videos of the
  dataset that the store does not hold complete at the end;
* orchestration: CPU seconds per video of the flow's process and of the run's Prefect server
  (a ``usam-video server`` of its own, which the flow and the workers reach through
  ``PREFECT_API_URL``), the flow's alone beside it, and wall seconds per video; the flow
  process's peak resident memory;
* object-store requests per video (every request moto answered during the run: chunks, claims
  and their renewals, metadata), and chunk writes per video beside them;
* the wall time of ``usam-video inspect`` and ``usam-video queue --json`` on the finished store.

    python -m usam_video.bench.scale                       # N = 1,000, 10,000, 50,000; 8 workers, 3 kills
    python -m usam_video.bench.scale --small               # ~200 videos, 4 workers, 2 kills, copy source
    python -m usam_video.bench.scale --sizes 1000 --source micro

The generated dataset is kept under ``--out`` (``build/scale`` by default) and reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from usam_video.bench.common import REPO_ROOT, base_parser, finish, format_bytes, format_table, machine_info

__all__ = [
    "MICRO_LIMIT",
    "ScaleFigures",
    "count_events",
    "main",
    "run_scale",
    "write_scale_dataset",
]

#: Above this many videos the ``copy`` mask source stands in for micro (unless told otherwise).
MICRO_LIMIT = 10_000
#: Rendered videos that the dataset's videos are copies of (hard links to their mp4s).
TEMPLATES = 16
_REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
_MARKER = ".usam-scale-dataset.json"
_VIDEO_NAME = "sav_{:06d}"


@dataclass
class ScaleFigures:
    """One size's figures (see the module docstring)."""

    videos: int
    source: str
    shard_size: int
    workers: int
    kills: int
    kills_mid_video: int
    duplicates: int
    missing: int
    failed: int
    flow_exit_code: int
    wall_s: float
    orchestration_cpu_s_per_video: float
    flow_cpu_s_per_video: float
    wall_s_per_video: float
    flow_peak_rss_bytes: int
    requests: int
    requests_per_video: float
    chunk_writes_per_video: float
    requests_by_kind: dict[str, int]
    inspect_s: float
    queue_s: float


# --------------------------------------------------------------------------- dataset


def write_scale_dataset(out: Path, videos: int, frames: int) -> Path:
    """An SA-V train-layout dataset of ``videos`` videos ``sav_000000`` ... under ``out``,
    copies of :data:`TEMPLATES` rendered ones (generated stream ``scale``, seed 0): each video's
    mp4 is a hard link to its template's, its JSON the template's with its own ``video_id``.

    A folder written before with the same sizes (its marker file says so) is reused as it is;
    ``out`` must otherwise not exist (the benchmark never writes into a folder it did not make).

    Returns:
        The dataset's root (``out/videos``).
    """
    from usam_video.datasets.rendering import generated_specs, render_video
    from usam_video.datasets.synthetic import write_sav_video
    from usam_video.errors import InputError

    marker = out / _MARKER
    wanted = {"videos": videos, "frames": frames, "templates": TEMPLATES}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return out / "videos"
    if out.exists() and not marker.exists():
        raise InputError(
            f"{out}: expected a folder the scale benchmark wrote (no {_MARKER}), got another folder."
        )
    if out.exists():
        shutil.rmtree(out)  # ours (its marker), of other sizes
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    templates = partial / "templates"
    root = partial / "videos"
    root.mkdir(parents=True)
    specs = generated_specs("scale", TEMPLATES, num_frames=frames, seed=0)
    sources = []
    for spec in specs:
        json_path = write_sav_video(templates, render_video(spec), step=4)
        sources.append((templates / f"{spec.name}.mp4", json.loads(json_path.read_text())))
    for index in range(videos):
        name = _VIDEO_NAME.format(index)
        mp4, data = sources[index % TEMPLATES]
        os.link(mp4, root / f"{name}.mp4")
        (root / f"{name}_manual.json").write_text(json.dumps({**data, "video_id": name}))
    (partial / _MARKER).write_text(json.dumps(wanted))
    os.replace(partial, out)  # whole or not at all
    return out / "videos"


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {process.returncode} before listening on port {port}."
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what}: nothing listens on port {port} after {timeout_s:g} s.")


#: Dummy credentials for moto (any value is accepted; s3fs needs some).
_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "scale",
    "AWS_SECRET_ACCESS_KEY": "scale",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class _Moto:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def requests(self) -> list[tuple[str, str, int]]:
        """Every request the server has answered so far: (method, path, status)."""
        found = (_REQUEST.search(line) for line in self.log.read_text(errors="replace").splitlines())
        return [(m["method"], m["path"], int(m["status"])) for m in found if m]


@contextmanager
def _moto_server(work: Path) -> Iterator[_Moto]:
    """moto's S3 server in a process of its own (its object store in its own memory, not the
    flow's), with its access log in a file, and a bucket ``scale``."""
    import s3fs

    port = _free_port()
    log = work / "moto.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, "moto server")
        url = f"http://127.0.0.1:{port}"
        s3fs.S3FileSystem(endpoint_url=url, key="scale", secret="scale").mkdir("scale")
        yield _Moto(url, log, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class _PrefectServer:
    url: str
    process: subprocess.Popen[bytes]
    cpu_s: float = 0.0  # filled in when it stops: its CPU and that of the children it reaped

    def wait_until_healthy(self, timeout_s: float = 180.0) -> None:
        """Return once the server answers its health check (RuntimeError if it exits first or
        stays silent ``timeout_s`` seconds)."""
        import urllib.request

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the Prefect server exited with code {self.process.returncode} before it answered."
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server at {self.url} did not answer within {timeout_s:g} s.")
            time.sleep(0.5)


@contextmanager
def _prefect_server(work: Path) -> Iterator[_PrefectServer]:
    """A Prefect server of the run's own (``usam-video server``, SQLite under ``work``), which
    the flow and every Dask worker reach through ``PREFECT_API_URL``, as on a real cluster.

    Without one the flow's process would start its embedded server, and each worker process,
    which cannot see that server, its own: a worker killed with ``kill -9`` left its server
    behind. Its own process group, stopped as a whole at the end.

    Yielded as soon as it is started: the caller starts the Dask cluster while the server sets
    up its database, and calls :meth:`_PrefectServer.wait_until_healthy` before the flow."""
    port = _free_port()
    env = {**_cli_env(work), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    usam = str(Path(sys.executable).with_name("usam-video"))
    with (work / "prefect-server.log").open("wb") as sink:
        process = subprocess.Popen(
            [usam, "server", "--port", str(port), "--home", str(work / "prefect")],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = _PrefectServer(f"http://127.0.0.1:{port}/api", process)
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        stopped = time.monotonic() + 30
        usage = None
        while usage is None and time.monotonic() < stopped:
            pid, _, rusage = os.wait4(process.pid, os.WNOHANG)
            if pid == process.pid:
                usage = rusage
            else:
                time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is still there
        if usage is None:
            os.wait4(process.pid, 0)
        else:
            server.cpu_s = usage.ru_utime + usage.ru_stime
        process.returncode = 0  # reaped here, not by Popen


@contextmanager
def _dask_cluster(
    work: Path, workers: int, source: str, events: Path, frame_delay: float, api_url: str
) -> Iterator[tuple[str, int]]:
    """A Dask ``LocalCluster`` of ``workers`` processes in a process of its own (``--serve-cluster``),
    whose workers run :class:`_ScalePlugin`; yields its scheduler's address and its pid."""
    address_file = work / "dask-address"
    env = {**os.environ, **_CREDENTIALS, "PREFECT_API_URL": api_url}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "usam_video.bench.scale",
            "--serve-cluster",
            str(address_file),
            "--workers",
            str(workers),
            "--source",
            source,
            "--events",
            str(events),
            "--frame-delay",
            str(frame_delay),
        ],
        stdin=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180
        while not address_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Dask cluster did not start (exit code {process.poll()}).")
            time.sleep(0.2)
        yield address_file.read_text().strip(), process.pid
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the cluster process ends when its stdin closes
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _serve_cluster(address_file: Path, workers: int, source: str, events: Path, frame_delay: float) -> None:
    """The cluster process: start the cluster, register the plugin, publish the address, and
    run until stdin closes."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    client.register_plugin(_ScalePlugin(source, str(events), frame_delay))
    temporary = address_file.with_name(address_file.name + ".tmp")
    temporary.write_text(str(cluster.scheduler_address))
    os.replace(temporary, address_file)
    sys.stdin.read()
    client.close()
    cluster.close()


# --------------------------------------------------------------------------- in the workers


def _emit(events: str, kind: str, video_id: str) -> None:
    """Append ``kind video pid time`` to the events file: one ``write`` of an ``O_APPEND`` file, so
    lines of concurrent processes never interleave."""
    fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{kind} {video_id} {os.getpid()} {time.time():.3f}\n".encode())
    finally:
        os.close(fd)


def _copy_first_mask(frame_delay: float):  # type: ignore[no-untyped-def]
    """The ``copy`` mask source: the claimed part of the label loop, with SAM 2's propagation
    replaced by the first frame's masks and constant scores (every array written as the loop
    writes it)."""
    import datetime as dt

    import numpy as np

    from usam_video.pipeline.label import code_version
    from usam_video.types import MaskSource, Status, VideoResult

    def label(context, store, video_id, ref, prompts, corrected, fingerprint, started):  # type: ignore[no-untyped-def]
        first = {p.object_id: p.mask for p in prompts if p.frame_index == 0 and p.mask is not None}
        object_ids = sorted(first)
        provenance = {
            "run_config": context.run.model_dump(mode="json"),
            "model_name": "copy-first-mask (scale benchmark stand-in)",
            "code_version": code_version(),
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        writer = store.begin_video(
            ref,
            object_ids,
            context.score_names,
            context.policy.reasons,
            provenance,
            fingerprint,
            candidate_score_names=context.scorer.candidate_names,
            num_candidates=context.model.num_mask_tokens,
        )
        masks = np.stack([first[o] for o in object_ids]).astype(bool)
        n, s = len(object_ids), len(context.score_names)
        candidates = None
        if context.scorer.candidate_names:
            candidates = np.full(
                (n, context.model.num_mask_tokens, len(context.scorer.candidate_names)), 0.9, np.float32
            )
        try:
            for t in range(ref.num_frames):
                time.sleep(frame_delay)
                writer.write_frame(
                    t,
                    masks,
                    np.full((n, s), 0.9, np.float32),
                    np.full(n, Status.ACCEPTED, np.uint8),
                    np.zeros(n, np.uint8),
                    candidates,
                    np.full(n, MaskSource.PROPAGATED, np.uint8),
                )
            counts = writer.finish()
        except BaseException:
            writer.abort()
            raise
        return VideoResult(
            video_id,
            "labelled",
            frames=counts.frames,
            objects=counts.objects,
            accepted=counts.by_status[Status.ACCEPTED],
            seconds=time.perf_counter() - started,
        )

    return label


class _ScalePlugin(WorkerPlugin):
    """Runs in every Dask worker (and in each one the nanny starts after a kill): wraps the
    claimed part of :func:`usam_video.pipeline.label_video` so that it writes ``start`` and
    ``done`` events, and with source ``copy`` replaces it by :func:`_copy_first_mask`."""

    name = "usam-scale"

    def __init__(self, source: str, events: str, frame_delay: float) -> None:
        self.source, self.events, self.frame_delay = source, events, frame_delay

    def setup(self, worker: Any) -> None:
        import usam_video.pipeline.label as label_module

        attribute = "_label_claimed"  # the seam: claim, lease and release stay label_video's
        inner = getattr(label_module, attribute)
        if self.source == "copy":
            inner = _copy_first_mask(self.frame_delay)
        events = self.events

        def instrumented(context, store, video_id, *args):  # type: ignore[no-untyped-def]
            _emit(events, "start", video_id)
            result = inner(context, store, video_id, *args)
            _emit(events, "done", video_id)
            return result

        setattr(label_module, attribute, instrumented)

    def teardown(self, worker: Any) -> None:
        """Nothing to undo: the worker process ends."""

    def transition(self, *args: Any, **kwargs: Any) -> None:
        """Not used."""


# --------------------------------------------------------------------------- measuring


def count_events(lines: Sequence[str]) -> tuple[Counter[str], dict[int, set[str]]]:
    """Finished writes per video, and per pid the videos it started and has not finished."""
    done: Counter[str] = Counter()
    open_by_pid: dict[int, set[str]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue  # a line cut by a kill mid-write cannot happen (one write), but be safe
        kind, video, pid = parts[0], parts[1], int(parts[2])
        if kind == "start":
            open_by_pid.setdefault(pid, set()).add(video)
        elif kind == "done":
            done[video] += 1
            open_by_pid.get(pid, set()).discard(video)
    return done, open_by_pid


def _read_events(events: Path) -> list[str]:
    return events.read_text().splitlines() if events.exists() else []


def _peak_rss(pid: int) -> int:
    """``VmHWM`` of a live process, in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class _Killer(threading.Thread):
    """Kills ``kills`` workers, each in the middle of a video, at evenly spread points of the
    run's progress (finished writes)."""

    def __init__(self, events: Path, videos: int, kills: int, seed: int = 0) -> None:
        super().__init__(name="usam-scale-killer", daemon=True)
        self.events, self.kills = events, kills
        self.points = [videos * (k + 1) // (kills + 1) for k in range(kills)]
        self.killed: list[tuple[int, str]] = []
        self.stop = threading.Event()
        self.random = random.Random(seed)

    def run(self) -> None:
        while self.points and not self.stop.wait(0.05):
            done, open_by_pid = count_events(_read_events(self.events))
            if sum(done.values()) < self.points[0]:
                continue
            busy = [pid for pid, videos in open_by_pid.items() if videos and _alive(pid)]
            if not busy:
                continue
            pid = self.random.choice(sorted(busy))
            video = sorted(open_by_pid[pid])[0]
            os.kill(pid, signal.SIGKILL)
            self.killed.append((pid, video))
            self.points.pop(0)


def _run_config(work: Path, dataset_root: Path, store_url: str, endpoint: str) -> Path:
    import yaml

    dataset = {
        "name": "scale",
        "format": "sav",
        "root": str(dataset_root),
        "layout": "mp4",
        "annotation_source": "manual",
    }
    run = {
        "name": "scale",
        "dataset": dataset,
        "model": str(REPO_ROOT / "configs" / "models" / "micro.yaml"),
        "heads": {"directory": str(REPO_ROOT / "usam_video" / "weights" / "heads-micro"), "token_dim": 128},
        "policy": str(REPO_ROOT / "configs" / "policies" / "trained.yaml"),
        "store": store_url,
        "storage_options": {"endpoint_url": endpoint},
    }
    path = work / "run.yaml"
    path.write_text(yaml.safe_dump(run, sort_keys=False))
    return path


def _cli_env(work: Path, endpoint: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        **_CREDENTIALS,
        # A Prefect database of this run's own: the benchmark measures its flow, not earlier ones.
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "TQDM_DISABLE": "1",
    }
    env.pop("PREFECT_API_URL", None)
    if endpoint is not None:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def _timed(command: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}: {done.stderr[-2000:]}")
    return seconds, done.stdout


def _classify(path: str) -> str:
    if "/claims/" in path or "/.usam-claims" in path or "probe" in path:
        return "claims"
    if re.search(r"/c/[\d/]*$|/c\.[\d.]*$|/c/\d", path):
        return "chunks"
    return "metadata"


def run_scale(
    out: Path,
    videos: int,
    workers: int,
    kills: int,
    source: str,
    frames: int = 4,
    frame_delay: float = 0.0,
    seed: int = 0,
    shard_size: int | None = None,
    report_videos: int | None = None,
) -> ScaleFigures:
    """Label ``videos`` generated SA-V videos into one S3 store with ``workers`` Dask worker
    processes and ``kills`` kill -9s; the figures of :class:`ScaleFigures`. ``shard_size``: videos
    per task (None: the flow's default, :func:`usam_video.pipeline.shards.shard_size_for`);
    ``report_videos``: the run's review pages (None: the flow's default)."""
    from usam_video.pipeline.shards import shard_size_for
    from usam_video.store import PseudoLabelStore

    dataset_root = write_scale_dataset(out / f"dataset-{videos}x{frames}", videos, frames)
    work = Path(tempfile.mkdtemp(prefix=f"scale-{videos}-", dir=out))
    events = work / "events"
    usam = str(Path(sys.executable).with_name("usam-video"))
    try:
        with (
            _moto_server(work) as moto,
            _prefect_server(work) as server,
            _dask_cluster(work, workers, source, events, frame_delay, server.url) as (address, _),
        ):
            server.wait_until_healthy()  # it started up while the cluster did
            store_url = "s3://scale/store.zarr"
            config = _run_config(work, dataset_root, store_url, moto.url)
            before = len(moto.requests())
            killer = _Killer(events, videos, kills, seed)
            started = time.perf_counter()
            flow = subprocess.Popen(
                [usam, "run", str(config), "--task-runner", "dask", "--dask-address", address]
                + ([] if shard_size is None else ["--shard-size", str(shard_size)])
                + ([] if report_videos is None else ["--report-videos", str(report_videos)]),
                env={**_cli_env(work), "PREFECT_API_URL": server.url},
                stdout=(work / "run.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            killer.start()
            peak, usage, status = 0, None, 0
            while usage is None:
                # wait4, not Popen.poll: it reports the CPU of the process (and of any child it
                # reaped), and the peak RSS is read while it still runs.
                pid, status, rusage = os.wait4(flow.pid, os.WNOHANG)
                if pid == flow.pid:
                    usage = rusage
                    break
                peak = max(peak, _peak_rss(flow.pid))
                time.sleep(0.2)
            flow.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - started
            killer.stop.set()
            killer.join()
            requests = moto.requests()[before:]
            cpu = usage.ru_utime + usage.ru_stime
            env = _cli_env(work, moto.url)
            inspect_s, _ = _timed([usam, "inspect", store_url], env)
            queue_s, _ = _timed([usam, "queue", store_url, "--json"], env)
            store = PseudoLabelStore.open(
                store_url, "r", storage_options={"endpoint_url": moto.url, **_s3_keys()}
            )
            complete = {v for v in store.videos() if store.is_complete(v)}
        # Stopped with the with-block above: the server's CPU is known now.
        orchestration = cpu + server.cpu_s
        done, _ = count_events(_read_events(events))
        names = [_VIDEO_NAME.format(i) for i in range(videos)]
        log_text = (work / "run.log").read_text(errors="replace")
        by_kind = Counter(_classify(path) for _, path, _ in requests)
        chunk_writes = sum(
            1 for method, path, _ in requests if method == "PUT" and _classify(path) == "chunks"
        )
        return ScaleFigures(
            videos=videos,
            source=source,
            shard_size=shard_size or shard_size_for(videos),
            workers=workers,
            kills=len(killer.killed),
            kills_mid_video=len(killer.killed),
            duplicates=sum(1 for v in names if done[v] > 1),
            missing=sum(1 for v in names if v not in complete),
            failed=log_text.count("failed:"),
            flow_exit_code=flow.returncode,
            wall_s=wall,
            orchestration_cpu_s_per_video=orchestration / videos,
            flow_cpu_s_per_video=cpu / videos,
            wall_s_per_video=wall / videos,
            flow_peak_rss_bytes=peak,
            requests=len(requests),
            requests_per_video=len(requests) / videos,
            chunk_writes_per_video=chunk_writes / videos,
            requests_by_kind=dict(by_kind),
            inspect_s=inspect_s,
            queue_s=queue_s,
        )
    finally:
        if os.environ.get("USAM_SCALE_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


def _s3_keys() -> dict[str, str]:
    return {"key": _CREDENTIALS["AWS_ACCESS_KEY_ID"], "secret": _CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated numbers of videos (default 1000,10000,50000; --small 200)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="Dask worker processes (default 8; --small 4)"
    )
    parser.add_argument("--kills", type=int, default=None, help="kill -9s per size (default 3; --small 2)")
    parser.add_argument(
        "--source",
        choices=["auto", "micro", "copy"],
        default="auto",
        help=f"mask source: auto = micro up to {MICRO_LIMIT:,} videos, copy above (--small: copy)",
    )
    parser.add_argument("--frames", type=int, default=4, help="frames per video")
    parser.add_argument(
        "--shard-size", type=int, default=None, help="videos per task (default: the flow's; --small 10)"
    )
    parser.add_argument(
        "--report-videos", type=int, default=None, help="the run's review pages (default: the flow's)"
    )
    parser.add_argument("--frame-delay", type=float, default=None, help="copy source: seconds per frame")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "scale")
    parser.add_argument("--serve-cluster", type=Path, default=None, help=argparse_hidden())
    parser.add_argument("--events", type=Path, default=None, help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.serve_cluster is not None:
        _serve_cluster(args.serve_cluster, args.workers, args.source, args.events, args.frame_delay)
        return {}
    sizes_text = args.sizes or ("200" if args.small else "1000,10000,50000")
    sizes = [int(s) for s in sizes_text.split(",") if s]
    workers = args.workers or (4 if args.small else 8)
    kills = args.kills if args.kills is not None else (2 if args.small else 3)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"scale benchmark on {machine_info()}", flush=True)
    results = []
    for n in sizes:
        source = args.source
        if source == "auto":
            source = "copy" if args.small or n > MICRO_LIMIT else "micro"
        delay = args.frame_delay if args.frame_delay is not None else (0.02 if source == "copy" else 0.0)
        shard_size = args.shard_size or (10 if args.small else None)
        figures = run_scale(
            args.out,
            n,
            workers,
            kills,
            source,
            args.frames,
            delay,
            shard_size=shard_size,
            report_videos=args.report_videos,
        )
        results.append(figures)
        print(f"N {n} source {source}: duplicates {figures.duplicates} missing {figures.missing}", flush=True)
    rows = [
        [
            f"{f.videos:,}",
            f.source,
            f.shard_size,
            f"{f.workers} / {f.kills}",
            f.duplicates,
            f.missing,
            f.failed,
            f"{f.wall_s:.0f}",
            f"{1000 * f.orchestration_cpu_s_per_video:.1f}",
            f"{1000 * f.flow_cpu_s_per_video:.1f}",
            f"{1000 * f.wall_s_per_video:.1f}",
            format_bytes(f.flow_peak_rss_bytes),
            f"{f.requests_per_video:.1f}",
            f"{f.chunk_writes_per_video:.1f}",
            f"{f.inspect_s:.1f}",
            f"{f.queue_s:.1f}",
        ]
        for f in results
    ]
    headers = [
        "videos",
        "source",
        "videos/task",
        "workers / kills",
        "dup",
        "missing",
        "failed",
        "wall s",
        "flow + server CPU ms/video",
        "flow CPU ms/video",
        "wall ms/video",
        "flow peak RSS",
        "requests/video",
        "chunk writes/video",
        "inspect s",
        "queue s",
    ]
    print(format_table(headers, rows))
    for f in results:
        print(f"duplicates {f.duplicates} missing {f.missing}")
    return finish({"machine": machine_info(), "sizes": [asdict(f) for f in results]}, args.json)


def argparse_hidden() -> str:
    """argparse's marker for an option left out of ``--help`` (internal: the cluster process)."""
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
