"""Bad input to ``usam-video release``: one row each, a one-line error (exit 2) naming what is
wrong, the store byte-identical and a folder the user owns untouched. Also: a release killed
half-way leaves nothing under the output's name, and incomplete videos are left out and named."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.release.conftest import tree_hashes
from usam_video.cli import app
from usam_video.config import DatasetConfig
from usam_video.errors import InputError
from usam_video.pipeline.release import release_store
from usam_video.release import MANIFEST, ReleasePolicy, verify_release

runner = CliRunner()


def _flip_mask_chunk(store: Path, tmp: Path) -> None:
    chunk = sorted(p for p in (store / "videos").glob("*/masks/c/3/**/*") if p.is_file())[0]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))


def _user_folder(store: Path, tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine")


def _feature_policy(store: Path, tmp: Path) -> None:
    (tmp / "policy.yaml").write_text("score: prev_iou\nthreshold: 0.5\n")


def _nothing(store: Path, tmp: Path) -> None:
    pass


# (id, prepare, extra arguments, words the one-line error must hold)
CASES: list[tuple[str, Callable[[Path, Path], None], list[str], list[str]]] = [
    ("unknown format", _nothing, ["--format", "tfrecord"], ["--format", "expected one of", "tfrecord"]),
    ("folder not ours", _user_folder, ["--format", "davis"], ["expected a new or empty folder", "--force"]),
    ("damaged store", _flip_mask_chunk, ["--format", "davis"], ["expected an intact store", "masks"]),
    ("risk above one", _nothing, ["--format", "davis", "--max-risk", "1.5"], ["--max-risk", "(0, 1)", "1.5"]),
    ("risk zero", _nothing, ["--format", "coco", "--max-risk", "0"], ["--max-risk", "(0, 1)"]),
    (
        "delta outside",
        _nothing,
        ["--format", "coco", "--max-risk", "0.1", "--delta", "2"],
        ["--delta", "(0, 1)"],
    ),
    ("bad split", _nothing, ["--format", "sav", "--split", "val=2"], ["--split", "val=2", "fraction"]),
    ("unknown video", _nothing, ["--format", "sav", "--video", "nope"], ["expected videos ['nope']"]),
    (
        "feature score",
        _feature_policy,
        ["--format", "sav", "--policy", "{tmp}/policy.yaml"],
        ["policy.yaml", "video feature"],
    ),
    (
        "audit too large",
        _nothing,
        ["--format", "sav", "--max-risk", "0.1", "--audit-size", "0"],
        ["audit size"],
    ),
]


@pytest.mark.parametrize(("prepare", "args", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_release_input_is_one_line_and_changes_nothing(
    store_copy: Path, tmp_path: Path, prepare: Callable[[Path, Path], None], args: list[str], words: list[str]
) -> None:
    prepare(store_copy, tmp_path)
    store_before, out_before = tree_hashes(store_copy), tree_hashes(tmp_path / "out")
    argv = [
        "release",
        str(store_copy),
        "--out",
        str(tmp_path / "out"),
        *[a.format(tmp=tmp_path) for a in args],
    ]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("error:") and "Traceback" not in message
    assert len(message.replace("\n", " ").split("error:")) == 2  # one error
    for word in words:
        assert word in message.replace("\n", " "), (word, message)
    assert tree_hashes(store_copy) == store_before
    assert tree_hashes(tmp_path / "out") == out_before
    assert not list(tmp_path.glob(".out.*"))  # no staging folder left behind


def test_a_missing_store_is_refused_and_not_created(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["release", str(tmp_path / "none.zarr"), "--format", "davis", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "none.zarr" in result.output
    assert not (tmp_path / "none.zarr").exists() and not (tmp_path / "o").exists()


def test_an_audit_with_no_truth_is_refused(
    micro_store: Path, generated: DatasetConfig, tmp_path: Path
) -> None:
    """Ground truth on the first frame only (like DAVIS test-dev): no candidate has a truth."""
    import torch

    from tests.release.conftest import REPO
    from usam_video.config import HeadsConfig, RunConfig, load_model_config
    from usam_video.pipeline import label_dataset

    data = Path(shutil.copytree(generated.root, tmp_path / "data"))
    video = generated.videos[0]
    for png in (data / "Annotations" / "480p" / video).glob("*.png"):
        if png.name != "00000.png":
            png.unlink()
    store = tmp_path / "s.zarr"
    run = RunConfig(
        name="first-frame-only",
        dataset=generated.model_copy(update={"root": data, "videos": [video]}),
        model=load_model_config(REPO / "configs" / "models" / "micro.yaml"),
        heads=HeadsConfig(directory=REPO / "usam_video" / "weights" / "heads-micro", token_dim=128),
        store=str(store),
    )
    torch.set_num_threads(1)
    label_dataset(run)
    before = tree_hashes(store)
    result = runner.invoke(
        app, ["release", str(store), "--format", "davis", "--out", str(tmp_path / "o"), "--max-risk", "0.1"]
    )
    assert (
        result.exit_code == 2 and "expected audited frame-objects with known truth, got none" in result.output
    )
    assert tree_hashes(store) == before and not (tmp_path / "o").exists()


def test_a_release_killed_half_way_leaves_nothing(micro_store: Path, tmp_path: Path, monkeypatch) -> None:
    from usam_video.errors import WriteError
    from usam_video.release import formats

    calls = {"n": 0}
    original = formats.DavisWriter.add_frame

    def dying(self, video, t, masks):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        return original(self, video, t, masks)

    monkeypatch.setattr(formats.DavisWriter, "add_frame", dying)
    with pytest.raises(WriteError, match="No space left on device"):
        release_store(micro_store, "davis", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_an_unchanged_earlier_release_is_replaced_a_touched_one_only_with_force(
    micro_store: Path, tmp_path: Path
) -> None:
    from usam_video.output_folder import MARKER

    out = tmp_path / "out"
    release_store(micro_store, "coco", out)
    assert (out / MARKER).is_file() and verify_release(out) == []
    release_store(micro_store, "ytvis", out)  # our own unchanged output: replaced whole
    assert json.loads((out / MANIFEST).read_text())["dataset_format"] == "ytvis"
    assert not (out / "images").exists()
    (out / "notes.txt").write_text("the user's")
    before = tree_hashes(out)
    with pytest.raises(InputError, match="--force"):
        release_store(micro_store, "coco", out)
    assert tree_hashes(out) == before
    release_store(micro_store, "coco", out, force=True)  # the user's other files are kept
    assert (out / "notes.txt").read_text() == "the user's" and (out / "images").is_dir()


def test_incomplete_videos_are_left_out_and_named_unless_required(store_copy: Path, tmp_path: Path) -> None:
    video = sorted(p.name for p in (store_copy / "videos").iterdir())[1]
    meta = store_copy / "videos" / video / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["complete"] = False
    doc["attributes"]["failure"] = "OSError: [Errno 28] No space left on device"
    meta.write_text(json.dumps(doc))
    result = release_store(store_copy, "sav", tmp_path / "out", policy=ReleasePolicy()).result
    assert video not in result.frames and "No space left" in result.skipped[video]
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["skipped"] == {video: result.skipped[video]} and video not in manifest["videos"]
    before = tree_hashes(store_copy)
    cli = runner.invoke(
        app,
        ["release", str(store_copy), "--format", "sav", "--out", str(tmp_path / "o2"), "--require-complete"],
    )
    assert cli.exit_code == 2 and video in cli.output and "--require-complete" in cli.output
    assert tree_hashes(store_copy) == before and not (tmp_path / "o2").exists()
