"""Claims across processes and hosts (issue #36, item 1), on a real S3 endpoint (moto's server,
``conftest.py``) and on a folder.

Hosts are played by processes (``claim_worker.py``) with distinct ``USAM_VIDEO_HOST`` names and
owners: for claims, a host is its name, its kernel boot and its pid namespace, so two processes
named apart are two hosts (the dead-pid shortcut never crosses them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.asyn import sync_wrapper
from fsspec.implementations.memory import MemoryFileSystem
from s3fs import S3FileSystem
from typer.testing import CliRunner

from usam_video.cli import app
from usam_video.config import RunConfig
from usam_video.errors import InputError, StoreError
from usam_video.store import PseudoLabelStore

WORKER = Path(__file__).with_name("claim_worker.py")


class Claimant:
    """A claim_worker process posing as ``host``."""

    def __init__(self, host: str, env: dict[str, str]):
        self.host = host
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER)],
            env={**os.environ, **env, "USAM_VIDEO_HOST": host},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"claim worker {self.host} ended without answering (exit {self.process.poll()})"
        return json.loads(line)

    def ask(self, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.answer()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def shared(s3_endpoint) -> str:
    """The store on the S3 endpoint that the two hosts share (each test its own videos)."""
    return s3_endpoint.url_for("shared")


@pytest.fixture(scope="module")
def hosts(s3_endpoint, shared: str) -> Iterator[tuple[Claimant, Claimant]]:
    """Two claimant processes, "host-a" and "host-b", with the shared store open (started once
    for the module: each costs a Python start, the store's imports and a first claim)."""
    env = {**s3_endpoint.env, "AWS_ENDPOINT_URL": s3_endpoint.url}
    pair = (Claimant("host-a", env), Claimant("host-b", env))
    try:
        for claimant in pair:
            claimant.send(op="open", location=shared, options={"endpoint_url": s3_endpoint.url})
        for claimant in pair:
            assert claimant.answer() == {"ok": True}
        yield pair
    finally:
        for claimant in pair:
            claimant.close()


def _race(hosts: tuple[Claimant, Claimant], videos: list[str], lease: float = 30.0) -> list[dict]:
    """Both hosts claim ``videos`` in the same order at the same moment; their answers."""
    for claimant in hosts:
        claimant.send(op="claim", videos=videos, owner=f"{claimant.host}/worker", lease=lease)
    return [claimant.answer()["results"] for claimant in hosts]


def _exactly_one_winner(results: list[dict], videos: list[str]) -> None:
    for video in videos:
        a, b = results[0][video], results[1][video]
        assert (a is None) != (b is None), f"{video}: host-a got {a!r}, host-b got {b!r}"
        assert {a, b} - {None} == {"host-b/worker" if a is not None else "host-a/worker"}


def test_two_hosts_never_both_claim_a_video(s3_endpoint, shared, hosts) -> None:
    videos = [f"race-{i:02d}" for i in range(10)]
    results = _race(hosts, videos)
    _exactly_one_winner(results, videos)
    store = PseudoLabelStore.open(shared, "r", storage_options={"endpoint_url": s3_endpoint.url})
    claims = {c.video_id: c for c in store.claims() if c.video_id in videos}
    assert sorted(claims) == videos
    for video in videos:
        winner = "host-a" if results[0][video] is None else "host-b"
        assert claims[video].owner == f"{winner}/worker" and claims[video].host == winner
        assert claims[video].live


def test_an_expired_lease_is_taken_over_by_exactly_one_of_two_hosts(s3_endpoint, shared, hosts) -> None:
    store = PseudoLabelStore.open(shared, storage_options={"endpoint_url": s3_endpoint.url})
    videos = [f"takeover-{i:02d}" for i in range(8)]
    # A host that stopped renewing: its claims (1.5 s leases) outlive it by their lease only. (The
    # hosts' first claims, which sweep expired claims, were made by the fixture.)
    assert all(store.claim(v, owner="host-gone/worker", lease_s=1.5) is None for v in videos)
    refused = _race(hosts, videos[:2])
    assert all(r[v] == "host-gone/worker" for r in refused for v in videos[:2])
    mine = [c for c in store.claims() if c.video_id in videos]
    time.sleep(max(0.0, max(c.expires_at for c in mine) - time.time()) + 0.05)
    mark = s3_endpoint.mark()
    _exactly_one_winner(_race(hosts, videos), videos)
    requests = Counter((m, s) for m, _, s in s3_endpoint.since(mark))
    # Each video: two refused creates (412), two reads, one swap that wins. The other host, if
    # it read the claim before the swap, has its swap refused (412) and creates and reads again.
    assert requests[("PUT", 200)] == len(videos)
    assert len(videos) * 2 <= requests[("PUT", 412)] <= len(videos) * 4
    owners = {c.owner for c in store.claims() if c.video_id in videos}
    assert owners <= {"host-a/worker", "host-b/worker"}


def test_a_renewed_lease_is_never_taken_over(hosts) -> None:
    holder, taker = hosts
    # 1 s leases renewed every 1/3 s, held for 2.4 s while the other host tries for 1.6 s:
    # without renewals the claim would have expired during the tries.
    held = holder.ask(op="hold", video="renewed", owner="host-a/worker", lease=1.0, seconds=2.4)
    assert held == {"claimed": None}
    polled = taker.ask(op="poll", video="renewed", owner="host-b/worker", lease=1.0, seconds=1.6)
    assert polled == {"holders": ["host-a/worker"], "won": 0}
    assert holder.answer()["renewals"] >= 3
    # Released: the other host gets it at once.
    claimed = taker.ask(op="claim", videos=["renewed"], owner="host-b/worker", lease=1.0)
    assert claimed["results"] == {"renewed": None}


def test_requests_per_claim_renewal_and_release(s3_env) -> None:
    """What claims cost on S3, counted at the endpoint: a process's first claim in a store
    probes it (3) and sweeps expired claims (a listing, a read per claim); then a claim, a
    renewal and a release are one request each."""
    location = s3_env.url_for("requests")
    store = PseudoLabelStore.open(location)

    def requests(action) -> list[tuple[str, int]]:
        mark = s3_env.mark()
        action()
        return [(method, status) for method, _, status in s3_env.since(mark)]

    first = requests(lambda: store.claim("v0", owner="a"))
    assert first == [("PUT", 200), ("PUT", 412), ("DELETE", 204), ("GET", 200), ("PUT", 200)]
    assert requests(lambda: store.claim("v1", owner="a")) == [("PUT", 200)]
    assert requests(lambda: store.claim("v1", owner="b")) == [("PUT", 412), ("GET", 200)]
    assert requests(lambda: store.release("v1", owner="a")) == [("DELETE", 204)]
    assert requests(lambda: store.claim("v2", owner="a", lease_s=0.01)) == [("PUT", 200)]
    time.sleep(0.05)
    taken = requests(lambda: store.claim("v2", owner="b"))
    assert taken == [("PUT", 412), ("GET", 200), ("PUT", 200)]


def test_renewals_cost_one_request_each(s3_env) -> None:
    store = PseudoLabelStore.open(s3_env.url_for("renewals"))
    assert store.claim("v", owner="a", lease_s=0.3) is None
    mark = s3_env.mark()
    with store.keep_claim("v", owner="a", lease_s=0.3) as renewal:
        time.sleep(0.55)
    assert renewal.renewals >= 3
    assert [(m, s) for m, _, s in s3_env.since(mark)] == [("PUT", 200)] * renewal.renewals


def test_a_lost_claim_is_reported_when_the_writer_leaves(tmp_path: Path) -> None:
    store = PseudoLabelStore.open(tmp_path / "s.zarr")
    assert store.claim("v", owner="a") is None
    with pytest.raises(StoreError, match=r"expected a to hold its claim .* taken over by b"):
        with store.keep_claim("v", owner="a", lease_s=0.3):
            store.release("v", owner="a")  # as if its lease had run out and b had taken it
            assert store.claim("v", owner="b") is None
            time.sleep(0.25)
    assert [c.owner for c in store.claims()] == ["b"]


class _ConditionDroppingS3(S3FileSystem):
    """An S3 client whose conditional headers are lost on the way (as with an endpoint, or a
    proxy before it, that ignores ``If-None-Match``/``If-Match``): the server is the real one."""

    protocol = ("s3nocond",)

    async def _call_s3(self, method, *akwarglist, **kwargs):
        kwargs.pop("IfNoneMatch", None)
        kwargs.pop("IfMatch", None)
        return await super()._call_s3(method, *akwarglist, **kwargs)

    call_s3 = sync_wrapper(_call_s3)  # s3fs binds its own _call_s3 here, not the override


class _OtherFileSystem(MemoryFileSystem):
    """A URL scheme with no conditional writes known to claims (like gcs://, az://)."""

    protocol = "otherfs"


def test_an_endpoint_ignoring_conditional_writes_is_refused_by_name(s3_env) -> None:
    fsspec.register_implementation("s3nocond", _ConditionDroppingS3, clobber=True)
    location = s3_env.url_for("nocond").replace("s3://", "s3nocond://")
    store = PseudoLabelStore.open(location)  # the store itself opens and writes
    with pytest.raises(StoreError, match=rf"at {re.escape(s3_env.url)}: expected a store that refuses"):
        store.claim("v", owner="a")
    with pytest.raises(StoreError, match="ignores conditional writes"):  # every claim, no fallback
        store.claim("v", owner="a")
    assert store.claims() == []  # the probe was removed


def test_a_scheme_without_conditional_writes_is_refused(tmp_path: Path) -> None:
    fsspec.register_implementation("otherfs", _OtherFileSystem, clobber=True)
    store = PseudoLabelStore.open(f"otherfs://claims-{tmp_path.name}/s.zarr")
    with pytest.raises(StoreError, match=r"otherfs://.*got a _OtherFileSystem store.*shared file system"):
        store.claim("v")


def test_storage_options_name_the_endpoint(s3_endpoint, monkeypatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):  # only the options name the server
        monkeypatch.delenv(name, raising=False)
    options = {"endpoint_url": s3_endpoint.url}
    location = s3_endpoint.url_for("options")
    store = PseudoLabelStore.open(location, storage_options=options)
    assert store.claim("v", owner="a") is None
    reopened = PseudoLabelStore.open(location, "r", storage_options=options)
    assert reopened.store_id == store.store_id and [c.owner for c in reopened.claims()] == ["a"]


def test_storage_options_need_a_url(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"s\.zarr: expected storage_options only for a URL store"):
        PseudoLabelStore.open(tmp_path / "s.zarr", storage_options={"anon": True})
    fields = {
        "name": "r",
        "dataset": {"name": "d", "root": str(tmp_path)},
        "model": {"name": "m", "sam2_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "random_init": True},
    }
    with pytest.raises(ValueError, match="storage_options: expected them only with a URL store"):
        RunConfig.model_validate({**fields, "store": str(tmp_path / "s.zarr"), "storage_options": {"a": 1}})
    run = RunConfig.model_validate(
        {**fields, "store": "s3://b/s.zarr", "storage_options": {"secret": "hidden"}}
    )
    assert run.storage_options == {"secret": "hidden"}
    assert "hidden" not in run.model_dump_json()  # never into a store's provenance


def test_a_dead_process_frees_its_claim_on_its_own_host_only(tmp_path: Path, monkeypatch) -> None:
    """On a shared folder a pid means nothing to another host: only the lease frees a claim
    there; on the claimer's own host (name, boot, pid namespace) a dead pid frees it at once."""
    location = str(tmp_path / "s.zarr")
    store = PseudoLabelStore.open(location)
    gone = Claimant("host-a", {})
    assert gone.ask(op="open", location=location) == {"ok": True}
    assert gone.ask(op="die", video="v", owner="host-a/worker", lease=60.0) == {"claimed": None}
    gone.process.wait(timeout=30)
    monkeypatch.setenv("USAM_VIDEO_HOST", "host-b")
    assert store.claim("v", owner="host-b/worker") == "host-a/worker"  # its lease holds elsewhere
    monkeypatch.setenv("USAM_VIDEO_HOST", "host-a")
    assert store.claim("v", owner="host-a/rerun") is None  # its own host sees the pid is gone


def test_expired_claims_are_swept_and_inspect_shows_live_ones(tmp_path: Path) -> None:
    location = str(tmp_path / "s.zarr")
    PseudoLabelStore.open(location)
    claims = tmp_path / "s.zarr" / "claims"
    claims.mkdir()
    old = {
        "owner": "old/worker",
        "host": "old",
        "pid": 1,
        "time": time.time() - 99,
        "expires": time.time() - 9,
    }
    (claims / "expired.json").write_text(json.dumps(old))
    store = PseudoLabelStore.open(location)
    assert store.claim("live", owner="host-a/worker") is None  # this process's first claim sweeps
    assert sorted(p.name for p in claims.glob("*.json")) == ["live.json"]
    assert store.claim("short", owner="host-b/worker", lease_s=0.01) is None
    time.sleep(0.05)

    runner = CliRunner()
    shown = json.loads(runner.invoke(app, ["inspect", location, "--json"]).stdout)["claims"]
    assert [(c["video_id"], c["owner"], c["live"]) for c in shown] == [
        ("live", "host-a/worker", True),
        ("short", "host-b/worker", False),
    ]
    table = runner.invoke(app, ["inspect", location]).stdout
    assert "live claims" in table and "host-a/worker" in table and "host-b/worker" not in table
    assert "1 expired claim(s)" in table
    assert store.clean_claims() == ["short"]
    assert [c.video_id for c in store.claims()] == ["live"]


def test_inspect_reads_claims_on_s3(s3_env) -> None:
    location = s3_env.url_for("inspect")
    store = PseudoLabelStore.open(location)
    assert store.claim("v", owner="host-a/worker") is None
    result = CliRunner().invoke(app, ["inspect", location, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["store"] == location and data["videos"] == []
    assert [(c["video_id"], c["owner"], c["live"]) for c in data["claims"]] == [("v", "host-a/worker", True)]
