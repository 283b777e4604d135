"""Each head is scored on the feature it was trained on: the published heads (official layout, no
manifest: pairing "reference") and the project's own ("aligned"), on tokens of the real SAM 2.1
hiera-t architecture (random weights: no checkpoint can be downloaded here), for the chosen
mask and for every candidate, checked against an independent float64 MLP."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SMALL_SAM2_CONFIG
from usam_video.config import DatasetConfig, ModelConfig
from usam_video.heads import MANIFEST_FILE, load_heads
from usam_video.scoring import Scorer
from usam_video.types import FramePrediction, ObjectPrompt

HEADS = ("iou_tiny", "iou_large", "model_gap", "task_gap")
PER_CANDIDATE = ("iou_tiny", "iou_large")
SHIFT = {"iou_tiny": 0.0, "iou_large": 0.0, "model_gap": -0.5, "task_gap": -0.5}
D = 256


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[FramePrediction]:
    """Two frames of the small SAM 2.1 config (hiera-t's decoder and multimask settings, 256-d
    tokens, a small trunk at 256 px: the calls are the same, at a tenth of hiera-t's 1024 px
    cost): frame 0 prompted with one click (object 1: a multimask call) and a box (object 2:
    two corner points, more than multimask_max_pt_num = 1: a single-mask call); frame 1 tracked
    (multimask_output_for_tracking: true)."""
    from usam_video.datasets import open_dataset
    from usam_video.datasets.synthetic import make_demo_dataset
    from usam_video.engine import PropagationSession, build_model

    config = ModelConfig(
        name="t", sam2_config=str(SMALL_SAM2_CONFIG), random_init=True, device="cpu"
    )
    model = build_model(config)
    root = tmp_path_factory.mktemp("pairing-video")
    make_demo_dataset(root, num_videos=1, num_frames=2, height=96, width=128, seed=0)
    reader = open_dataset(DatasetConfig(name="p", root=root))
    session = PropagationSession(model, reader.frames(reader.list_videos()[0]), keep_candidates=True)
    session.add_prompt(
        ObjectPrompt(1, 0, points=np.array([[60, 40]], np.float32), point_labels=np.array([1], np.int32))
    )
    session.add_prompt(ObjectPrompt(2, 0, box=np.array([10, 10, 50, 60], np.float32)))
    out = list(session.propagate())
    assert out[0].mask_tokens.shape == (2, 4, D)
    return out


def _random_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    # Wider than nn.Linear's default init, so that the tokens' differences move the scores.
    shapes = [(2 * D, 2 * D), (2 * D, 2 * D), (1, 2 * D)]
    state = {}
    for i, shape in enumerate(shapes):
        state[f"layers.{i}.weight"] = torch.randn(shape, generator=generator) * (2.0 / shape[1] ** 0.5)
        state[f"layers.{i}.bias"] = torch.randn(shape[0], generator=generator) * 0.1
    return state


@pytest.fixture(scope="module")
def head_states() -> dict[str, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(16)
    return {name: _random_state(generator) for name in HEADS}


def _write_official(directory: Path, states) -> Path:
    for name, state in states.items():
        (directory / name).mkdir(parents=True)
        torch.save(state, directory / name / "model.pth")
    return directory


@pytest.fixture
def reference_dir(tmp_path: Path, head_states) -> Path:
    """The published layout: <dir>/<head>/model.pth, no manifest."""
    return _write_official(tmp_path / "reference", head_states)


@pytest.fixture
def aligned_dir(tmp_path: Path, head_states) -> Path:
    directory = _write_official(tmp_path / "aligned", head_states)
    manifest = {
        "format": "usam-video-heads", "version": 1, "pairing": "aligned", "token_dim": D,
        "sam2_version": "2.1", "sam2_size": "tiny", "heads": {},
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    return directory


def _mlp(state: dict[str, torch.Tensor], x: np.ndarray) -> float:
    """sigmoid(MLP(x)) in float64, written out (no torch module, no fused path)."""
    w = [state[f"layers.{i}.weight"].double().numpy() for i in range(3)]
    b = [state[f"layers.{i}.bias"].double().numpy() for i in range(3)]
    h = np.maximum(w[0] @ x.astype(np.float64) + b[0], 0)
    h = np.maximum(w[1] @ h + b[1], 0)
    return float(1.0 / (1.0 + np.exp(-(w[2] @ h + b[2])[0])))


def _token(pairing: str, k: int) -> int:
    # The reference code sets mask_tokens[0:3] beside the multimask outputs 1..3; the
    # single-mask output (0) keeps token 0. Aligned: token k.
    return k if pairing == "aligned" else max(k - 1, 0)


def _expected(states, record: FramePrediction, pairing: str, name: str, o: int, k: int) -> float:
    x = np.concatenate([record.iou_tokens[o], record.mask_tokens[o, _token(pairing, k)]])
    return _mlp(states[name], x) + SHIFT[name]


def test_the_captured_calls_are_multimask_and_single_mask(records) -> None:
    first, tracked = records
    # candidate_valid marks the tokens the decoder returned a mask for
    assert first.candidate_valid[0].tolist() == [False, True, True, True]  # click: multimask
    assert first.candidate_valid[1].sum() == 1  # box: single-mask (the chosen token only)
    assert first.candidate_valid[1, first.chosen_candidate[1]]
    assert tracked.candidate_valid.tolist() == [[False, True, True, True]] * 2


@pytest.mark.parametrize("layout", ["reference", "aligned"])
def test_every_score_is_the_head_on_its_paired_token(
    layout: str, records, head_states, reference_dir: Path, aligned_dir: Path
) -> None:
    heads = load_heads(reference_dir if layout == "reference" else aligned_dir)
    assert heads.pairing == layout
    scorer = Scorer(heads)
    assert scorer.candidate_names == ("sam_iou",) + PER_CANDIDATE
    checked = 0
    for record in records:
        # The real chosen candidates, then each candidate forced as the chosen one (the
        # single-mask output 0 included), on the same real tokens.
        variants = [record] + [
            dataclasses.replace(record, chosen_candidate=np.full(2, k, np.int64)) for k in range(4)
        ]
        for variant in variants:
            scores = scorer(variant)
            assert scores.values.dtype == np.float32 and scores.candidate_values.dtype == np.float32
            for o in range(2):
                chosen = int(variant.chosen_candidate[o])
                for name in HEADS:
                    want = _expected(head_states, variant, layout, name, o, chosen)
                    assert scores.column(name)[o] == pytest.approx(want, abs=1e-6), (name, o, chosen)
                    checked += 1
                for c, name in enumerate(PER_CANDIDATE, start=1):
                    for k in range(4):
                        want = _expected(head_states, variant, layout, name, o, k)
                        assert scores.candidate_values[o, k, c] == pytest.approx(want, abs=1e-6), (name, o, k)
                        checked += 1
    assert checked == 2 * 5 * 2 * (len(HEADS) + 4 * len(PER_CANDIDATE))


def test_the_pairing_changes_the_scores(records, reference_dir: Path, aligned_dir: Path) -> None:
    """The check above could not tell the pairings apart if the tokens gave equal scores."""
    tracked = records[1]
    reference = Scorer(load_heads(reference_dir))(tracked)
    aligned = Scorer(load_heads(aligned_dir))(tracked)
    # candidate 0 reads token 0 either way; candidates 1..3 read different tokens
    np.testing.assert_allclose(reference.candidate_values[:, 0], aligned.candidate_values[:, 0], atol=1e-7)
    assert np.abs(reference.candidate_values[:, 1:, 1:] - aligned.candidate_values[:, 1:, 1:]).max() > 1e-3
    # under "reference", candidates 0 and 1 share token 0
    shared = reference.candidate_values[:, :2, 1:]
    np.testing.assert_allclose(shared[:, 0], shared[:, 1], atol=1e-7)
