"""The heads manifest: what a heads directory's heads were trained on, and what loading makes of it."""

import json
from pathlib import Path

import pytest
import torch

from usam_video.config import HeadsConfig
from usam_video.errors import HeadsError
from usam_video.heads import (
    MANIFEST_FILE,
    HeadInputs,
    HeadsManifest,
    UsamHead,
    heads_from_config,
    load_heads,
    random_heads,
    read_manifest,
    save_heads,
    token_index,
    write_manifest,
)

WEIGHTS = Path(__file__).resolve().parents[2] / "usam_video" / "weights" / "heads-micro"
VIDEO_INPUTS = HeadInputs(("prev_iou", "overlap_others"), (0.5, 0.1), (0.2, 0.05))


def official_layout(directory: Path, names=("iou_tiny", "task_gap"), d: int = 256) -> Path:
    """Heads as the paper publishes them: <dir>/<head>/model.pth state dicts, no manifest."""
    for name in names:
        (directory / name).mkdir(parents=True)
        torch.save(UsamHead(d).state_dict(), directory / name / "model.pth")
    return directory


def manifest_dict(**changes) -> dict:
    data = {
        "format": "usam-video-heads",
        "version": 1,
        "pairing": "aligned",
        "token_dim": 256,
        "sam2_version": "2.1",
        "sam2_size": "tiny",
        "heads": {},
    }
    data.update(changes)
    return data


def video_manifest(spec: object, **changes) -> str:
    return json.dumps(manifest_dict(heads={"lost_video": spec}, **changes))


def test_token_index_of_each_pairing() -> None:
    assert token_index("aligned", 4) == (0, 1, 2, 3)
    # multimask output k (1..3) beside token k-1; the single-mask output (0) beside token 0
    assert token_index("reference", 4) == (0, 0, 1, 2)
    with pytest.raises(HeadsError, match="expected one of"):
        token_index("shifted", 4)


def test_round_trip_with_video_head_inputs(tmp_path: Path) -> None:
    heads = {"iou_tiny": UsamHead(32), "lost_video": UsamHead(32, extra_inputs=2)}
    path = save_heads(
        tmp_path, heads, pairing="aligned", sam2_version="2.1", sam2_size="micro",
        inputs={"lost_video": VIDEO_INPUTS},
    )
    assert path == tmp_path / MANIFEST_FILE
    manifest = read_manifest(tmp_path)
    assert manifest == HeadsManifest("aligned", 32, "2.1", "micro", {"lost_video": VIDEO_INPUTS}, True)
    loaded = load_heads(tmp_path)
    assert loaded.pairing == "aligned" and loaded.sam2_size == "micro" and loaded.token_dim == 32
    assert loaded.token_head_names == ("iou_tiny",) and loaded.video_head_names == ("lost_video",)
    assert loaded.inputs_of("lost_video") == VIDEO_INPUTS and loaded.inputs_of("iou_tiny").inputs == ()
    video = loaded.heads["lost_video"]
    assert video.layers[0].weight.shape == (64, 66) and video.layers[1].weight.shape == (64, 64)
    x = torch.randn(5, 66)
    torch.testing.assert_close(video(x), heads["lost_video"](x))
    # write_manifest(read_manifest(...)) reproduces the file
    text = (tmp_path / MANIFEST_FILE).read_text()
    write_manifest(tmp_path, manifest)
    assert (tmp_path / MANIFEST_FILE).read_text() == text


def test_directory_without_manifest_is_the_published_21_set(tmp_path: Path) -> None:
    heads = load_heads(official_layout(tmp_path))
    assert heads.pairing == "reference" and heads.sam2_version == "2.1" and heads.sam2_size == "unknown"
    assert not heads.manifest.from_file and heads.video_head_names == ()
    # the SAM 2.0 set: the config says which release, the pairing stays the paper's
    old = heads_from_config(HeadsConfig(directory=tmp_path, sam2_version="2.0"))
    assert old.sam2_version == "2.0" and old.pairing == "reference"
    # the pairing enters the provenance hash: same files, other pairing, other hash
    aligned = load_heads(tmp_path, pairing="aligned")
    assert aligned.pairing == "aligned" and aligned.sha256 != heads.sha256


def test_own_heads_are_written_aligned_and_the_committed_ones_load() -> None:
    committed = load_heads(WEIGHTS)
    assert committed.pairing == "aligned" and committed.token_dim == 128
    assert committed.sam2_version == "2.1" and committed.sam2_size == "micro"
    assert "iou_micro" in committed.token_head_names
    assert committed.video_head_names == ("iou_video", "lost_video")
    assert random_heads(["iou_tiny"]).pairing == "aligned"


def test_config_that_contradicts_the_manifest_is_refused(tmp_path: Path) -> None:
    save_heads(tmp_path, {"iou_tiny": UsamHead(32)}, sam2_version="2.1")
    for kwargs, key in (
        ({"pairing": "reference"}, "pairing"),
        ({"sam2_version": "2.0"}, "sam2_version"),
        ({"token_dim": 64}, "token_dim"),
    ):
        with pytest.raises(HeadsError, match=f"expected {key} .*Drop '{key}'") as info:
            load_heads(tmp_path, **kwargs)
        assert str(tmp_path / MANIFEST_FILE) in str(info.value)
    assert load_heads(tmp_path, token_dim=32, pairing="aligned", sam2_version="2.1").token_dim == 32


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "unreadable content"),
        ("[1, 2]", "a JSON object, got list"),
        (json.dumps(manifest_dict(format="other")), "format 'usam-video-heads'"),
        (json.dumps(manifest_dict(version=2)), "version 1, got 2"),
        (json.dumps(manifest_dict(pairing="k")), r"pairing one of \['reference', 'aligned'\], got 'k'"),
        (json.dumps(manifest_dict(token_dim=0)), "token_dim a positive integer, got 0"),
        (json.dumps(manifest_dict(token_dim="256")), "token_dim a positive integer"),
        (json.dumps(manifest_dict(sam2_size="")), "sam2_size a non-empty string"),
        (json.dumps(manifest_dict(extra=1)), r"got unknown \['extra'\]"),
        (json.dumps(manifest_dict(heads=[])), "heads to be an object"),
        (
            video_manifest({"inputs": ["prev_iou"], "mean": [], "std": [1.0]}),
            r"heads\['lost_video'\]\.mean to hold 1 values \(one per input\), got 0",
        ),
        (
            video_manifest({"inputs": ["prev_iou"], "mean": [0.0], "std": [0.0]}),
            r"\.std to be positive",
        ),
        (
            video_manifest({"inputs": ["colour"], "mean": [0.0], "std": [1.0]}),
            r"unknown \['colour'\]",
        ),
        (
            video_manifest({"inputs": "prev_iou"}),
            r"\.inputs to be a list of input names",
        ),
    ],
)
def test_bad_manifest_names_the_file(tmp_path: Path, content: str, match: str) -> None:
    official_layout(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(content)
    with pytest.raises(HeadsError, match=match) as info:
        load_heads(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / MANIFEST_FILE}: expected")
    assert "delete it" in str(info.value)  # the remedy


def test_manifest_token_dim_that_the_files_contradict(tmp_path: Path) -> None:
    official_layout(tmp_path, d=256)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest_dict(token_dim=64)))
    with pytest.raises(HeadsError) as info:
        load_heads(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "iou_tiny" / "model.pth") in message and str(tmp_path / MANIFEST_FILE) in message
    assert "64-d tokens" in message and "layers.0.weight" in message


def test_manifest_input_count_that_the_file_contradicts(tmp_path: Path) -> None:
    official_layout(tmp_path, names=("lost_video",), d=32)  # a head without extra inputs
    spec = {"inputs": list(VIDEO_INPUTS.inputs), "mean": list(VIDEO_INPUTS.mean), "std": [0.2, 0.05]}
    (tmp_path / MANIFEST_FILE).write_text(video_manifest(spec, token_dim=32))
    with pytest.raises(HeadsError, match=r"2 extra inputs .*layers\.0\.weight"):
        load_heads(tmp_path)


def test_save_refuses_inconsistent_heads(tmp_path: Path) -> None:
    with pytest.raises(HeadsError, match=r"one token width, got widths \[32, 64\]"):
        save_heads(tmp_path, {"iou_tiny": UsamHead(32), "task_gap": UsamHead(64)})
    with pytest.raises(HeadsError, match="'lost_video' to take 0 extra inputs .* got a head with 2"):
        save_heads(tmp_path, {"lost_video": UsamHead(32, extra_inputs=2)})
    with pytest.raises(HeadsError, match=r"inputs for saved heads only, got \['lost_video'\]"):
        save_heads(tmp_path, {"iou_tiny": UsamHead(32)}, inputs={"lost_video": HeadInputs()})
    assert not (tmp_path / MANIFEST_FILE).exists()
