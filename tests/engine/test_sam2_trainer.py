"""``usam-video train-sam2``: a release fine-tunes micro with SAM 2's own trainer (sam2's
``training`` package: Trainer, SAM2Train, JSONRawDataset, MultiStepMultiMasksAndIous) on the
CPU, and the loss goes down; inputs that are not a release, or an output folder that is not
the command's, fail with one line naming them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import CONFIGS, REPO_ROOT
from usam_video.cli import app
from usam_video.config import ModelConfig
from usam_video.engine import build_model
from usam_video.output_folder import MARKER
from usam_video.pipeline.release import release_store
from usam_video.release import ReleasePolicy

runner = CliRunner()
SMOKE = CONFIGS / "training" / "sam2-trainer" / "smoke.yaml"
# The threshold of tests/release/test_release.py: a mix of released and unreleased pseudo-labels.
POLICY = ReleasePolicy(score="iou_video", threshold=0.9)
# One video (its 10 fully released frames of 12 give several clips of 4): the same few clips
# again and again, so the loss falls within a dozen steps.
VIDEO = "test-001"
STEPS = 12


@pytest.fixture(scope="module")
def release(micro_store: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sam2-trainer") / "release"
    release_store(micro_store, "sav", out, policy=POLICY, video_ids=[VIDEO], seed=3)
    return out


@pytest.fixture(scope="module")
def trained(release: Path, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The command, run once in its own interpreter (sam2's trainer sets up torch.distributed,
    logging and seeds process-wide)."""
    out = tmp_path_factory.mktemp("sam2-trainer-run") / "micro"
    command = [sys.executable, "-c", "from usam_video.cli import main; main()", "train-sam2", str(SMOKE)]
    command += [str(release), "--steps", str(STEPS), "--lr", "3e-4", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


@pytest.mark.slow
def test_sam2_trainer_fine_tunes_micro_on_a_release_and_the_loss_goes_down(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = trained
    payload = json.loads((out / "losses.json").read_text())
    losses = payload["loss"]
    assert len(losses) == payload["steps"] == STEPS and all(loss > 0 for loss in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.9 * first, losses
    assert set(payload["components"]) >= {"loss_mask", "loss_dice", "loss_iou", "loss_class"}
    assert f"loss {losses[0]:.4f} -> {losses[-1]:.4f}" in " ".join(done.stdout.split())
    # sam2's own output: its checkpoint, logs and the config as composed, in a folder the
    # command marks as its own.
    assert (out / "logs" / "train_stats.json").is_file() and (out / "config_resolved.yaml").is_file()
    assert json.loads((out / MARKER).read_text())["kind"] == "sam2-trainer"
    assert payload["record"]["release"]["manifest_sha256"] and payload["record"]["init_checkpoint_sha256"]


@pytest.mark.slow
def test_sam2_trainer_reports_the_frames_sam2s_loader_drops(
    release: Path, trained: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    out, done = trained
    masklet = json.loads((release / "annotations" / f"{VIDEO}_manual.json").read_text())["masklet"]
    kept = sum(None not in row for row in masklet)
    assert 4 <= kept < len(masklet)  # the release left something out, and a clip remains
    frames = json.loads((out / "losses.json").read_text())["record"]["frames"]
    assert (frames["frames"], frames["kept"], frames["dropped"]) == (len(masklet), kept, len(masklet) - kept)
    assert frames["videos_trained"] == [VIDEO] and (out / "train_videos.txt").read_text() == f"{VIDEO}\n"
    summary = " ".join(done.stdout.split())
    assert f"keeps {kept} of {len(masklet)} frames" in summary and f"{len(masklet) - kept} dropped" in summary


@pytest.mark.slow
def test_sam2_trainer_checkpoint_loads_as_a_project_model(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = trained
    micro = str(CONFIGS / "models" / "sam2_micro_128.yaml")
    checkpoint = out / "checkpoints" / "checkpoint.pt"
    student = build_model(ModelConfig(name="student", sam2_config=micro, checkpoint=checkpoint, device="cpu"))
    weights = REPO_ROOT / "usam_video" / "weights" / "sam2_micro_128.pt"
    teacher = torch.load(weights, weights_only=True)["model"]
    moved = [
        k
        for k, v in student.predictor.state_dict().items()
        if k in teacher and not torch.equal(v, teacher[k])
    ]
    assert moved  # fine-tuned: weights differ from micro's


def test_sam2_trainer_refuses_a_folder_that_is_not_a_release(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-release"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    result = runner.invoke(app, ["train-sam2", str(SMOKE), str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert str(folder) in message and "manifest.json" in message and "notes.txt" in message
    assert not (tmp_path / "out").exists()


def test_sam2_trainer_refuses_a_davis_release_and_a_users_output_folder(
    micro_store: Path, release: Path, tmp_path: Path
) -> None:
    davis = tmp_path / "davis"
    release_store(micro_store, "davis", davis, policy=POLICY, video_ids=[VIDEO], seed=3)
    result = runner.invoke(app, ["train-sam2", str(SMOKE), str(davis), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert str(davis / "manifest.json") in " ".join(result.output.split()) and "'davis'" in result.output
    users = tmp_path / "mine"
    users.mkdir()
    (users / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["train-sam2", str(SMOKE), str(release), "--out", str(users)])
    assert result.exit_code == 2 and str(users) in " ".join(result.output.split())
    assert sorted(p.name for p in users.iterdir()) == ["keep.txt"]
