from pathlib import Path

import pytest
import torch

from usam_video.errors import HeadsError
from usam_video.heads import GAP_HEADS, HEAD_NAMES, UsamHead, load_heads, random_heads, save_heads


def test_mlp_shape_and_parameter_names() -> None:
    head = UsamHead(256)
    assert list(head.state_dict()) == [f"layers.{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    assert head.layers[0].weight.shape == (512, 512) and head.layers[2].weight.shape == (1, 512)
    out = head(torch.randn(7, 512))
    assert out.shape == (7,) and ((out > 0) & (out < 1)).all()


def test_round_trip_in_official_format(tmp_path: Path) -> None:
    heads = random_heads(HEAD_NAMES, seed=3)
    save_heads(tmp_path, heads.heads)
    for name in HEAD_NAMES:
        assert (tmp_path / name / "model.pth").is_file()
    loaded = load_heads(tmp_path)
    assert loaded.names == HEAD_NAMES and not loaded.untrained and loaded.missing == ()
    x = torch.randn(4, 512)
    for name in HEAD_NAMES:
        torch.testing.assert_close(loaded.heads[name](x), heads.heads[name](x))
    assert load_heads(tmp_path).sha256 == loaded.sha256  # stable provenance hash


def test_cuda_saved_file_format_loads(tmp_path: Path) -> None:
    """Published heads are plain state dicts; we load them with map_location and weights_only."""
    state = {k: v.clone() for k, v in UsamHead().state_dict().items()}
    (tmp_path / "iou_tiny").mkdir()
    torch.save(state, tmp_path / "iou_tiny" / "model.pth")
    assert load_heads(tmp_path, ["iou_tiny"]).names == ("iou_tiny",)


def test_wrong_shape_names_file_and_tensor(tmp_path: Path) -> None:
    # The official layout (no manifest): the file's shapes are checked against the asked width.
    (tmp_path / "iou_tiny").mkdir()
    torch.save(UsamHead(128).state_dict(), tmp_path / "iou_tiny" / "model.pth")
    with pytest.raises(HeadsError) as info:
        load_heads(tmp_path, ["iou_tiny"], token_dim=256)
    message = str(info.value)
    assert str(tmp_path / "iou_tiny" / "model.pth") in message and "layers.0.weight" in message
    assert "official layout" in message


def test_missing_heads_load_the_rest_and_say_which(tmp_path: Path) -> None:
    save_heads(tmp_path, random_heads(["iou_tiny", "task_gap"]).heads)
    loaded = load_heads(tmp_path, ["iou_tiny", "model_gap", "task_gap"])
    assert loaded.names == ("iou_tiny", "task_gap") and loaded.missing == ("model_gap",)
    with pytest.raises(HeadsError, match="none of them"):
        load_heads(tmp_path, ["iou_large"])


def test_empty_or_absent_directory(tmp_path: Path) -> None:
    with pytest.raises(HeadsError, match="found nothing"):
        load_heads(tmp_path / "absent")
    with pytest.raises(HeadsError, match="found none"):
        load_heads(tmp_path)


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    (tmp_path / "iou_tiny").mkdir()
    torch.save({"layers.0.weight": Evil()}, tmp_path / "iou_tiny" / "model.pth")
    with pytest.raises(HeadsError, match="weights_only"):
        load_heads(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_random_heads_are_seeded_and_leave_global_rng_alone() -> None:
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = random_heads(["iou_tiny"], seed=1)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = random_heads(["iou_tiny"], seed=1)
    assert torch.equal(a.heads["iou_tiny"].layers[0].weight, b.heads["iou_tiny"].layers[0].weight)
    assert a.untrained and GAP_HEADS <= set(HEAD_NAMES)
