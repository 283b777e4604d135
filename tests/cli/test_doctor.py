"""`usam-video doctor` through typer's runner: text and JSON output, exit codes, run configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.conftest import SMALL_SAM2_CONFIG
from usam_video.cli import app
from usam_video.doctor import integrity
from usam_video.hashing import file_sha256
from usam_video.heads import random_heads, save_heads

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_prefect_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


def _run_yaml(tmp_path: Path, synth_root: Path, model: dict[str, Any], heads: dict[str, Any]) -> Path:
    path = tmp_path / "run.yaml"
    run = {
        "name": "doctor-test",
        "dataset": {"name": "synth", "root": str(synth_root), "videos": ["synth-000"]},
        "model": {"name": "small", "sam2_config": str(SMALL_SAM2_CONFIG), "device": "cpu", **model},
        "heads": heads,
        "store": str(tmp_path / "out" / "s.zarr"),
    }
    path.write_text(yaml.safe_dump(run))
    return path


def test_doctor_default_environment_is_all_ok() -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in ("torch", "cuda", "sam2", "decord", "zarr", "prefect", "prefect server", "disk"):
        assert any(line.split(None, 1)[1].startswith(name) for line in lines if line.startswith(" ok ")), name
    assert "FAIL" not in result.stdout and lines[-1] == "ready"


def test_doctor_json_parses() -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert {"python", "torch", "cuda", "sam2", "decord", "zarr", "prefect", "prefect server", "disk"} == {
        c["name"] for c in data["checks"]
    }
    assert all(set(c) == {"name", "ok", "fatal", "detail"} and c["ok"] for c in data["checks"])


def test_doctor_missing_checkpoint_exits_non_zero_and_names_it(tmp_path: Path, synth_root: Path) -> None:
    missing = tmp_path / "weights" / "sam2.1_hiera_tiny.pt"
    config = _run_yaml(tmp_path, synth_root, {"checkpoint": str(missing)}, {})
    result = runner.invoke(app, ["doctor", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert str(missing) in result.stdout
    assert "a run would fail: checkpoint" in result.stdout

    data = json.loads(runner.invoke(app, ["doctor", "--config", str(config), "--json"]).stdout)
    failed = [c for c in data["checks"] if not c["ok"] and c["fatal"]]
    assert [c["name"] for c in failed] == ["checkpoint"] and str(missing) in failed[0]["detail"]
    assert data["ok"] is False


def test_doctor_config_with_weights_and_heads_is_green(tmp_path: Path, synth_root: Path) -> None:
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, ckpt)
    heads = tmp_path / "heads"
    save_heads(heads, random_heads(["iou_tiny", "task_gap"]).heads)
    config = _run_yaml(tmp_path, synth_root, {"checkpoint": str(ckpt)}, {"directory": str(heads)})
    result = runner.invoke(app, ["doctor", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    names = ("config", "dataset", "sam2 config", "checkpoint", "heads/iou_tiny", "heads/task_gap", "disk")
    for name in names:
        assert checks[name]["ok"], checks[name]
    assert file_sha256(ckpt) in checks["checkpoint"]["detail"]
    assert str(tmp_path / "out" / "s.zarr") in checks["disk"]["detail"]


def test_doctor_malicious_heads_file_is_reported(tmp_path: Path, synth_root: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[Path]]:
            return (Path.touch, (tmp_path / "pwned",))

    heads = tmp_path / "heads"
    (heads / "iou_tiny").mkdir(parents=True)
    torch.save({"layers.0.weight": Evil()}, heads / "iou_tiny" / "model.pth")
    config = _run_yaml(tmp_path, synth_root, {"random_init": True}, {"directory": str(heads)})
    result = runner.invoke(app, ["doctor", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "heads/iou_tiny" in result.stdout and "NOT loadable" in result.stdout
    assert not (tmp_path / "pwned").exists()


def test_doctor_bad_config_is_a_failed_check(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nunknown_key: 1\n")
    result = runner.invoke(app, ["doctor", "--config", str(bad), "--json"])
    assert result.exit_code == 1
    (config,) = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "config"]
    assert not config["ok"] and str(bad) in config["detail"]


def test_doctor_names_a_corrupted_sam2_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "sam2"
    shutil.copytree(integrity.find_sam2_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "sam2_video_predictor.py").write_text("raise SystemExit('tampered')\n")
    monkeypatch.setattr(integrity, "find_sam2_dir", lambda: copy)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "mismatched: sam2_video_predictor.py" in result.stdout
    assert "a run would fail: sam2" in result.stdout
