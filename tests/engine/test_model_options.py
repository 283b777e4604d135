"""The speed options of a model config: ``compile_image_encoder`` and ``tf32`` (issue #17).

On the CPU the compiled image encoder is never run (inductor's max-autotune compile of the
small Hiera takes about a minute on two cores): the tests check the wiring and that the
decoder hooks still fire. A real compiled propagation runs under the ``gpu`` marker.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import CONFIGS, SMALL_SAM2_CONFIG
from usam_video.config import (
    DatasetConfig,
    ModelConfig,
    ModelRefinement,
    PolicyConfig,
    RunConfig,
    config_fingerprint,
    load_model_config,
)
from usam_video.engine import TokenCapture, build_model
from usam_video.engine.factory import image_encoder_compiled
from usam_video.engine.predictor import default_prefetch_workers
from usam_video.errors import ConfigError

SMALL_RANDOM = CONFIGS / "models" / "small-random.yaml"


@pytest.fixture(scope="module")
def compiled_small():
    config = load_model_config(SMALL_RANDOM).model_copy(
        update={"device": "cpu", "compile_image_encoder": True}
    )
    return build_model(config)


def _numpy(value: object) -> np.ndarray:
    # The capture hands over numpy arrays or device tensors, depending on the engine's version.
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _tf32_flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


# --------------------------------------------------------------------------- config


def test_options_default_off_and_load_from_yaml(tmp_path: Path) -> None:
    assert load_model_config(SMALL_RANDOM).compile_image_encoder is False
    assert load_model_config(SMALL_RANDOM).tf32 is False
    path = tmp_path / "m.yaml"
    path.write_text(
        f"name: m\nsam2_config: {SMALL_SAM2_CONFIG}\nrandom_init: true\n"
        "compile_image_encoder: true\ntf32: true\n"
    )
    config = load_model_config(path)
    assert config.compile_image_encoder and config.tf32


def test_defaults_leave_existing_fingerprints_unchanged() -> None:
    """Fingerprints of stores written before the options existed stay current."""
    model = ModelConfig(
        name="t",
        sam2_config="configs/sam2.1/sam2.1_hiera_t.yaml",
        checkpoint=Path("/ckpt/t.pt"),
        dtype="bfloat16",
        device="cuda",
    )
    # Computed with the code before compile_image_encoder/tf32 were added.
    assert config_fingerprint(model) == "5c6e0198508555f6"
    run = RunConfig(
        name="r",
        dataset=DatasetConfig(name="d", root=Path("/data")),
        model=model,
        store="/s.zarr",
        policy=PolicyConfig(model_refinement=ModelRefinement(model=model)),
    )
    dumped = run.model_dump(mode="json")
    for entry in (dumped["model"], dumped["policy"]["model_refinement"]["model"]):
        del entry["compile_image_encoder"], entry["tf32"], entry["prefetch_workers"]
    legacy = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]
    assert config_fingerprint(run) == legacy


@pytest.mark.parametrize("field", ["compile_image_encoder", "tf32"])
def test_a_non_default_option_changes_the_fingerprint(field: str) -> None:
    model = ModelConfig(name="t", sam2_config="x.yaml", random_init=True)
    changed = model.model_copy(update={field: True})
    assert config_fingerprint(changed) != config_fingerprint(model)
    run = RunConfig(name="r", dataset=DatasetConfig(name="d", root=Path("/data")), model=model, store="s")
    assert config_fingerprint(run.model_copy(update={"model": changed})) != config_fingerprint(run)


# --------------------------------------------------------------------------- compile_image_encoder


def test_default_build_compiles_nothing(small_model) -> None:
    assert not small_model.compiled_image_encoder
    assert not image_encoder_compiled(small_model.predictor)


def test_compile_image_encoder_sets_sams_own_option(compiled_small) -> None:
    predictor = compiled_small.predictor
    assert compiled_small.compiled_image_encoder and image_encoder_compiled(predictor)
    # sam2 wraps the bound forward of the encoder (an instance attribute), nothing else.
    wrapped = vars(predictor.image_encoder)["forward"]._torchdynamo_orig_callable
    assert wrapped.__self__ is predictor.image_encoder
    assert wrapped.__func__ is type(predictor.image_encoder).forward
    decoder = predictor.sam_mask_decoder
    for module in (decoder, decoder.transformer, decoder.iou_prediction_head, predictor.memory_attention):
        assert "forward" not in vars(module)
    assert type(predictor).__name__ == "StreamingVideoPredictor"


def test_the_model_config_overrides_the_sam2_yaml(tmp_path: Path) -> None:
    """A sam2 YAML saying ``compile_image_encoder: True`` does not compile a model whose config
    says false: the model config decides."""
    yaml_text = SMALL_SAM2_CONFIG.read_text()
    assert "compile_image_encoder: False" in yaml_text
    sam2_yaml = tmp_path / "compiled.yaml"
    sam2_yaml.write_text(yaml_text.replace("compile_image_encoder: False", "compile_image_encoder: True"))
    built = build_model(ModelConfig(name="m", sam2_config=str(sam2_yaml), random_init=True, device="cpu"))
    assert not built.compiled_image_encoder


def test_decoder_hooks_fire_with_a_compiled_encoder(compiled_small) -> None:
    """Token capture hooks the decoder, which stays eager: one decoder pass, one captured call.

    The decoder is fed random backbone features, so the compiled encoder never runs here.
    """
    predictor = compiled_small.predictor
    size = predictor.sam_image_embedding_size
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, predictor.sam_prompt_embed_dim, size, size, generator=generator)
    high_res = [
        torch.randn(2, 32, 4 * size, 4 * size, generator=generator),
        torch.randn(2, 64, 2 * size, 2 * size, generator=generator),
    ]
    with torch.inference_mode(), TokenCapture(predictor) as capture:
        predictor._forward_sam_heads(features, high_res_features=high_res, multimask_output=True)
    (call,) = capture.drain()
    k, d = compiled_small.num_mask_tokens, compiled_small.token_dim
    assert call.mask_tokens.shape == (2, k, d) and call.candidate_ious.shape == (2, k)
    assert np.isfinite(_numpy(call.mask_tokens)).all()
    assert set(_numpy(call.chosen).tolist()) <= set(range(1, k))
    assert image_encoder_compiled(predictor)  # still: nothing unwrapped it


# --------------------------------------------------------------------------- tf32


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path")
def test_tf32_is_ignored_on_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    before = _tf32_flags()
    config = load_model_config(SMALL_RANDOM).model_copy(update={"device": "cpu", "tf32": True})
    with caplog.at_level(logging.WARNING, logger="usam_video.engine.factory"):
        built = build_model(config)
    assert _tf32_flags() == before
    assert not built.tf32
    assert "'tf32: true' ignored on cpu" in caplog.text


def test_tf32_false_touches_nothing(small_model) -> None:
    before = _tf32_flags()
    assert not small_model.tf32
    build_model(load_model_config(SMALL_RANDOM).model_copy(update={"device": "cpu"}))
    assert _tf32_flags() == before


# --------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
def test_compiled_encoder_and_tf32_propagate_with_token_capture_on_cuda(synth_root: Path) -> None:
    from usam_video.datasets.registry import open_dataset
    from usam_video.engine import PropagationSession

    before = _tf32_flags()
    try:
        config = load_model_config(SMALL_RANDOM).model_copy(
            update={"device": "cuda", "compile_image_encoder": True, "tf32": True}
        )
        built = build_model(config)
        assert built.compiled_image_encoder and built.tf32 and _tf32_flags() == (True, True)
        reader = open_dataset(DatasetConfig(name="s", root=synth_root, videos=["synth-001"]))
        session = PropagationSession(built, reader.frames("synth-001"))
        for prompt in reader.prompts("synth-001"):
            session.add_prompt(prompt)
        records = list(session.propagate())
        assert [r.frame_index for r in records] == list(range(len(reader.frames("synth-001"))))
        for record in records:
            assert np.isfinite(record.mask_tokens).all() and np.isfinite(record.candidate_ious).all()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_prefetch_workers_is_never_in_the_fingerprint(tmp_path: Path) -> None:
    model = ModelConfig(name="t", sam2_config="x.yaml", random_init=True)
    assert config_fingerprint(model.model_copy(update={"prefetch_workers": 6})) == config_fingerprint(model)
    path = tmp_path / "m.yaml"
    path.write_text(f"name: m\nsam2_config: {SMALL_SAM2_CONFIG}\nrandom_init: true\nprefetch_workers: 0\n")
    with pytest.raises(ConfigError, match=r"m\.yaml.*prefetch_workers"):
        load_model_config(path)


def test_session_uses_the_configured_prefetch_workers(small_model, synth_root: Path) -> None:
    from dataclasses import replace

    from usam_video.datasets import open_dataset
    from usam_video.engine import PropagationSession

    frames = open_dataset(DatasetConfig(name="s", root=synth_root)).frames("synth-000")
    model = replace(small_model, config=small_model.config.model_copy(update={"prefetch_workers": 3}))
    session = PropagationSession(model, frames)
    assert session._state["images"].workers == 3
    session.close()
    session = PropagationSession(small_model, frames)
    assert session._state["images"].workers == default_prefetch_workers()
    session.close()


@pytest.mark.parametrize(("cores", "workers"), [(None, 1), (1, 1), (2, 1), (8, 4), (16, 8), (64, 8)])
def test_default_prefetch_workers(cores: int | None, workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert default_prefetch_workers() == workers
