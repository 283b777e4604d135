from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SMALL_SAM2_CONFIG
from usam_video.config import ModelConfig
from usam_video.engine import StreamingVideoPredictor, build_model, resolve_sam2_config, token_dim_of
from usam_video.errors import CheckpointError, ModelBuildError
from usam_video.hashing import file_sha256


def test_small_config_builds_real_sam2_classes(small_model) -> None:
    from sam2.modeling.backbones.hieradet import Hiera
    from sam2.modeling.memory_attention import MemoryAttention
    from sam2.modeling.memory_encoder import MemoryEncoder
    from sam2.modeling.sam.mask_decoder import MaskDecoder

    p = small_model.predictor
    assert isinstance(p, StreamingVideoPredictor)
    assert isinstance(p.image_encoder.trunk, Hiera)
    assert isinstance(p.memory_attention, MemoryAttention)
    assert isinstance(p.memory_encoder, MemoryEncoder)
    assert isinstance(p.sam_mask_decoder, MaskDecoder)
    assert p.image_size == 256 and small_model.token_dim == 256 and small_model.num_mask_tokens == 4
    assert p.fill_hole_area == 0  # explicit: sam2's hole filling needs its CUDA extension
    assert small_model.untrained and small_model.checkpoint_sha256 == "random"
    assert 5e6 < sum(t.numel() for t in p.parameters()) < 8e6


def test_same_seed_same_weights(small_model, small_model_config) -> None:
    again = build_model(small_model_config)
    for (k, a), (_, b) in zip(
        small_model.predictor.state_dict().items(), again.predictor.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k


def test_random_init_leaves_the_global_rng_alone(small_model_config) -> None:
    """The seed of random weights is set in a fork of the generator, not the caller's."""
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    build_model(small_model_config)
    assert torch.equal(torch.rand(3), expected)


def test_checkpoint_weights_do_not_depend_on_the_global_rng(small_model, tmp_path: Path) -> None:
    """No seed is drawn for a checkpoint build: every parameter and buffer comes from the file."""
    ckpt = tmp_path / "small.pt"
    torch.save({"model": small_model.predictor.state_dict()}, ckpt)
    config = ModelConfig(name="s", sam2_config=str(SMALL_SAM2_CONFIG), checkpoint=ckpt, device="cpu")
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(build_model(config).predictor)
    buffers = [dict(m.named_buffers()) | m.state_dict() for m in models]
    assert buffers[0].keys() == buffers[1].keys()
    for key, value in buffers[0].items():
        assert torch.equal(value, buffers[1][key]), key


def test_checkpoint_round_trip_loads_strictly(small_model, tmp_path: Path) -> None:
    ckpt = tmp_path / "small.pt"
    torch.save({"model": small_model.predictor.state_dict()}, ckpt)
    loaded = build_model(
        ModelConfig(name="s", sam2_config=str(SMALL_SAM2_CONFIG), checkpoint=ckpt, seed=123, device="cpu")
    )
    assert not loaded.untrained and loaded.checkpoint_sha256 == file_sha256(ckpt)
    for k, v in small_model.predictor.state_dict().items():
        assert torch.equal(v, loaded.predictor.state_dict()[k]), k


def test_checkpoint_with_missing_and_unexpected_keys_is_named(small_model, tmp_path: Path) -> None:
    state = dict(small_model.predictor.state_dict())
    state.pop("sam_mask_decoder.iou_token.weight")
    state["extra.weight"] = torch.zeros(1)
    ckpt = tmp_path / "bad.pt"
    torch.save({"model": state}, ckpt)
    with pytest.raises(CheckpointError) as info:
        build_model(ModelConfig(name="s", sam2_config=str(SMALL_SAM2_CONFIG), checkpoint=ckpt, device="cpu"))
    message = str(info.value)
    assert (
        str(ckpt) in message and "sam_mask_decoder.iou_token.weight" in message and "extra.weight" in message
    )


def test_checkpoint_bad_files(tmp_path: Path) -> None:
    cfg = dict(name="s", sam2_config=str(SMALL_SAM2_CONFIG), device="cpu")
    with pytest.raises(CheckpointError, match="found nothing"):
        build_model(ModelConfig(checkpoint=tmp_path / "absent.pt", **cfg))
    flat = tmp_path / "flat.pt"
    torch.save({"weights": torch.zeros(1)}, flat)
    with pytest.raises(CheckpointError, match="'model' state dict"):
        build_model(ModelConfig(checkpoint=flat, **cfg))


def test_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    ckpt = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, ckpt)
    with pytest.raises(CheckpointError, match="weights_only"):
        build_model(ModelConfig(name="s", sam2_config=str(SMALL_SAM2_CONFIG), checkpoint=ckpt, device="cpu"))
    assert not (tmp_path / "pwned").exists()


def test_config_resolution() -> None:
    official = resolve_sam2_config("configs/sam2.1/sam2.1_hiera_t.yaml")
    assert official.is_file() and official.parent.name == "sam2.1"
    assert resolve_sam2_config("configs/sam2.1/sam2.1_hiera_l") == resolve_sam2_config(
        "configs/sam2.1/sam2.1_hiera_l.yaml"
    )
    with pytest.raises(ModelBuildError, match="found neither"):
        resolve_sam2_config("configs/sam2.1/sam9_hiera_z.yaml")


def test_bad_model_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "arch.yaml"
    bad.write_text("trunk: {embed_dim: 3}\n")
    with pytest.raises(ModelBuildError, match="top-level 'model'"):
        build_model(ModelConfig(name="s", sam2_config=str(bad), random_init=True, device="cpu"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  image_size: 256\n")
    with pytest.raises(ModelBuildError, match="could not instantiate"):
        build_model(ModelConfig(name="s", sam2_config=str(broken), random_init=True, device="cpu"))


def test_token_width_is_read_from_the_yaml_as_the_built_model_has_it(small_model, tmp_path: Path) -> None:
    """The flow's process checks heads against the token width without building SAM 2."""
    from tests.conftest import CONFIGS
    from usam_video.config import load_model_config

    assert token_dim_of(str(SMALL_SAM2_CONFIG)) == small_model.token_dim == 256
    micro = load_model_config(CONFIGS / "models" / "micro.yaml")
    assert token_dim_of(micro.sam2_config) == 128
    bad = tmp_path / "arch.yaml"
    bad.write_text("model:\n  image_encoder: {neck: {d_model: wide}}\n")
    with pytest.raises(ModelBuildError, match=r"arch.yaml: expected an integer .*neck.d_model, got 'wide'"):
        token_dim_of(str(bad))


def test_official_tiny_architecture_builds(tmp_path: Path) -> None:
    """The official configs go through the same factory (random weights here: no checkpoint can
    be downloaded); a checkpoint saved from it loads back strictly."""
    model = build_model(
        ModelConfig(
            name="t", sam2_config="configs/sam2.1/sam2.1_hiera_t.yaml", random_init=True, device="cpu"
        )
    )
    assert model.predictor.image_size == 1024 and model.token_dim == 256
    assert token_dim_of("configs/sam2.1/sam2.1_hiera_t.yaml") == model.token_dim  # read, not built
    n = sum(t.numel() for t in model.predictor.parameters())
    assert 38e6 < n < 40e6  # sam2.1_hiera_tiny has 38.9 M parameters
    x = np.zeros(1)
    assert x.size == 1


@pytest.mark.gpu
def test_cuda_bf16_build() -> None:
    model = build_model(
        ModelConfig(
            name="s", sam2_config=str(SMALL_SAM2_CONFIG), random_init=True, device="cuda", dtype="bfloat16"
        )
    )
    assert model.device.type == "cuda"


def test_video_defaults_apply_unless_the_config_sets_them(small_model) -> None:
    # The small test config sets none: it gets sam2's video-predictor defaults.
    assert small_model.predictor.sam_mask_decoder.dynamic_multimask_via_stability is True
    # The trained micro architecture turns the stability swap off itself, and keeps it off.
    micro = build_model(
        ModelConfig(
            name="m",
            sam2_config=str(Path(__file__).resolve().parents[2] / "configs/models/sam2_micro_128.yaml"),
            random_init=True,
            device="cpu",
        )
    )
    assert micro.predictor.sam_mask_decoder.dynamic_multimask_via_stability is False
    assert micro.predictor.binarize_mask_from_pts_for_mem_enc is True
    assert micro.token_dim == 128
