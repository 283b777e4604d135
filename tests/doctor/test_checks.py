"""Tests of usam_video.doctor.checks: each check on a good and a broken case, without a GPU."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from usam_video.doctor import checks, integrity
from usam_video.doctor.checks import (
    Check,
    check_checkpoint,
    check_cuda,
    check_disk,
    check_heads,
    check_prefect_server,
    check_sam2,
    checks_as_dict,
    exit_code,
    run_checks,
)
from usam_video.hashing import file_sha256
from usam_video.heads import random_heads, save_heads

REPO_ROOT = Path(__file__).resolve().parents[2]


class _Evil:
    """Unpickling this creates the file ``marker``: the code a checkpoint must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


@pytest.fixture
def no_prefect_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def test_check_is_frozen_and_exit_code_counts_fatal_failures_only() -> None:
    ok = Check("a", True, "fine")
    warn = Check("b", False, "odd", fatal=False)
    fail = Check("c", False, "broken")
    with pytest.raises(AttributeError):
        ok.ok = False  # type: ignore[misc]
    assert exit_code([ok, warn]) == 0 and exit_code([ok, warn, fail]) == 1
    assert checks_as_dict([ok, fail]) == {
        "ok": False,
        "checks": [
            {"name": "a", "ok": True, "detail": "fine", "fatal": True},
            {"name": "c", "ok": False, "detail": "broken", "fatal": True},
        ],
    }


def test_default_environment_is_all_ok(no_prefect_api: None) -> None:
    checks = run_checks()
    names = [c.name for c in checks]
    assert names == [
        "python",
        "torch",
        "cuda",
        "sam2",
        "decord",
        "zarr",
        "prefect",
        "prefect server",
        "disk",
    ]
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert exit_code(checks) == 0
    by_name = {c.name: c for c in checks}
    assert torch.__version__ in by_name["torch"].detail
    assert "25 files identical to upstream 2b90b9f5" in by_name["sam2"].detail
    assert "embedded server" in by_name["prefect server"].detail


def test_sam2_corruption_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "sam2"
    shutil.copytree(integrity.find_sam2_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "modeling" / "sam2_base.py").open("a", encoding="utf-8") as fh:
        fh.write("# patched\n")
    (copy / "utils" / "amg.py").unlink()
    monkeypatch.setattr(integrity, "find_sam2_dir", lambda: copy)
    check = check_sam2()
    assert not check.ok and check.fatal
    assert str(copy) in check.detail
    assert "mismatched: modeling/sam2_base.py" in check.detail
    assert "missing: utils/amg.py" in check.detail
    assert exit_code([check]) == 1


def test_sam2_wrong_version_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    real = checks._dist_version
    monkeypatch.setattr(checks, "_dist_version", lambda name: "0.4.1" if name == "sam2" else real(name))
    check = check_sam2()
    assert not check.ok and "expected sam2 1.1.0" in check.detail


def test_sam2_absent_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent() -> Path:
        raise integrity.ModelBuildError("find_sam2_dir: expected the sam2 package to be installed, got none.")

    monkeypatch.setattr(integrity, "find_sam2_dir", absent)
    check = check_sam2()
    assert not check.ok and "installed" in check.detail


def test_checkpoint_found_sized_hashed_and_loadable(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"a": torch.zeros(3), "b": torch.ones(2, 2)}}, path)
    check = check_checkpoint(path)
    assert check.ok, check.detail
    assert str(path) in check.detail
    assert file_sha256(path) in check.detail
    assert "2 tensors" in check.detail


def test_checkpoint_missing_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "sam2.1_hiera_tiny.pt"
    check = check_checkpoint(path)
    assert not check.ok and check.fatal and str(path) in check.detail
    unset = check_checkpoint(Path("/x/${SAM2_CHECKPOINTS}/a.pt"))
    assert "environment variable" in unset.detail


def test_checkpoint_without_model_dict_fails(tmp_path: Path) -> None:
    path = tmp_path / "flat.pt"
    torch.save({"weights": torch.zeros(1)}, path)
    check = check_checkpoint(path)
    assert not check.ok and "'model' state dict" in check.detail


def test_checkpoint_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil(tmp_path / "pwned")}, path)
    check = check_checkpoint(path)
    assert not check.ok and check.fatal
    assert "NOT loadable with weights_only=True" in check.detail
    assert not (tmp_path / "pwned").exists()
    # The control: without weights_only the same file does run code.
    torch.load(path, weights_only=False)
    assert (tmp_path / "pwned").exists()


def test_heads_found_sized_hashed_and_loadable(tmp_path: Path) -> None:
    save_heads(tmp_path, random_heads(["iou_tiny", "task_gap"]).heads)
    checks = check_heads(tmp_path, ["iou_tiny", "task_gap"])
    assert [c.name for c in checks] == ["heads/manifest", "heads/iou_tiny", "heads/task_gap"]
    assert all(c.ok for c in checks)
    # save_heads writes the project's own pairing into manifest.json; the doctor reports it
    assert "manifest.json" in checks[0].detail and "pairing aligned" in checks[0].detail
    path = tmp_path / "iou_tiny" / "model.pth"
    assert str(path) in checks[1].detail and file_sha256(path) in checks[1].detail
    # Without names, every <head>/model.pth found is checked.
    assert [c.name for c in check_heads(tmp_path)] == ["heads/manifest", "heads/iou_tiny", "heads/task_gap"]


def test_heads_pairing_of_the_official_layout_and_bad_manifests(tmp_path: Path) -> None:
    save_heads(tmp_path, random_heads(["iou_tiny"]).heads)
    (tmp_path / "manifest.json").unlink()  # now the published layout: <dir>/<head>/model.pth only
    manifest = check_heads(tmp_path)[0]
    assert manifest.ok and "no manifest.json" in manifest.detail
    assert "pairing reference" in manifest.detail and "SAM 2.1" in manifest.detail
    assert "SAM 2.0" in check_heads(tmp_path, sam2_version="2.0")[0].detail
    (tmp_path / "manifest.json").write_text("{garbage")
    (bad,) = check_heads(tmp_path)
    assert bad.name == "heads/manifest" and bad.failed and str(tmp_path / "manifest.json") in bad.detail
    save_heads(tmp_path, random_heads(["iou_tiny"]).heads)  # a valid manifest: aligned
    (conflict,) = check_heads(tmp_path, pairing="reference")
    assert conflict.failed and "expected pairing 'reference'" in conflict.detail


def test_heads_malicious_pickle_is_reported_not_loadable(tmp_path: Path) -> None:
    save_heads(tmp_path, random_heads(["iou_tiny"]).heads)
    (tmp_path / "task_gap").mkdir()
    torch.save({"layers.0.weight": _Evil(tmp_path / "pwned")}, tmp_path / "task_gap" / "model.pth")
    checks = {c.name: c for c in check_heads(tmp_path, ["iou_tiny", "task_gap"])}
    assert checks["heads/iou_tiny"].ok
    bad = checks["heads/task_gap"]
    assert not bad.ok and bad.fatal
    assert str(tmp_path / "task_gap" / "model.pth") in bad.detail
    assert "NOT loadable" in bad.detail and "weights_only" in bad.detail
    assert not (tmp_path / "pwned").exists()


def test_heads_partial_set_warns_and_empty_set_fails(tmp_path: Path) -> None:
    save_heads(tmp_path, random_heads(["iou_tiny"]).heads)
    checks = check_heads(tmp_path, ["iou_tiny", "model_gap"])
    missing = {c.name: c for c in checks}["heads/model_gap"]
    assert not missing.ok and not missing.fatal and exit_code(checks) == 0
    none = check_heads(tmp_path, ["model_gap"])
    assert exit_code(none) == 1
    assert exit_code(check_heads(tmp_path / "absent")) == 1
    (random,) = check_heads(None, random_init=True)
    assert not random.ok and not random.fatal
    (unset,) = check_heads(None)
    assert unset.ok


def test_disk_reports_free_space_and_fails_below_the_minimum(tmp_path: Path) -> None:
    store = tmp_path / "not" / "yet" / "s.zarr"
    check = check_disk(store)
    assert check.ok and "will be created" in check.detail and "GiB free" in check.detail
    low = check_disk(store, min_free_bytes=1 << 62)
    assert not low.ok and low.fatal


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only case")
def test_cuda_requested_without_a_device_fails() -> None:
    assert check_cuda("auto").ok
    check = check_cuda("cuda")
    assert not check.ok and check.fatal and "no CUDA device" in check.detail


@pytest.mark.gpu
def test_cuda_device_reports_name_and_bf16() -> None:
    check = check_cuda("cuda", "bfloat16")
    assert torch.cuda.get_device_name() in check.detail
    assert "bf16: supported" in check.detail and check.ok


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        status = 200 if self.path == "/api/health" else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_prefect_server_embedded_reachable_and_unreachable(
    health_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    embedded = check_prefect_server()
    assert embedded.ok and "embedded server" in embedded.detail

    monkeypatch.setenv("PREFECT_API_URL", f"{health_server}/api/")
    reachable = check_prefect_server(timeout=5)
    assert reachable.ok and "HTTP 200" in reachable.detail

    wrong = check_prefect_server(f"{health_server}/nope", timeout=5)
    assert not wrong.ok and wrong.fatal and "HTTP 404" in wrong.detail

    url = f"http://127.0.0.1:{_closed_port()}/api"
    start = time.monotonic()
    down = check_prefect_server(url, timeout=1)
    assert time.monotonic() - start < 5
    assert not down.ok and down.fatal and url in down.detail
    assert exit_code([down]) == 1


def test_checks_import_neither_sam2_nor_prefect() -> None:
    code = (
        "import os, sys\n"
        "os.environ.pop('PREFECT_API_URL', None)\n"
        "from usam_video.doctor import run_checks, exit_code\n"
        "assert exit_code(run_checks()) == 0\n"
        "assert 'sam2' not in sys.modules, 'sam2 was imported'\n"
        "assert 'prefect' not in sys.modules, 'prefect was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=120)
