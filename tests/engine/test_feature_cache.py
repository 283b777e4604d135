"""The image encoder's outputs kept across sessions: tracking is bit for bit that of an uncached
session, the budget bounds what is held, and a cached frame is never decoded or encoded again."""

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.engine import PropagationSession
from usam_video.engine.predictor import FeatureCache
from usam_video.errors import InputError
from usam_video.types import FramePrediction, ObjectPrompt

VIDEO = "synth-002"  # 6 frames, 3 objects


def propagate(model, root: Path, cache: FeatureCache | None, relabel: bool = False) -> list[FramePrediction]:
    """The video from its first-frame prompts; ``relabel``: plus a mask prompt on frame 3 that
    replaces object 2's mask there (as a correction does)."""
    ds = open_dataset(DatasetConfig(name="s", root=root))
    features = cache.video(VIDEO) if cache is not None else None
    session = PropagationSession(model, ds.frames(VIDEO), keep_candidates=True, features=features)
    for prompt in ds.prompts(VIDEO):
        session.add_prompt(prompt)
    if relabel:
        mask = np.zeros((96, 128), bool)
        mask[30:60, 40:90] = True
        session.add_prompt(ObjectPrompt(2, 3, mask))
    return list(session.propagate())


def assert_same(a: list[FramePrediction], b: list[FramePrediction]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for f in fields(FramePrediction):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if isinstance(u, np.ndarray):
                assert u.dtype == v.dtype and np.array_equal(u, v, equal_nan=u.dtype.kind == "f"), f.name
            else:
                assert u == v, f.name


@pytest.fixture(scope="module")
def uncached(small_model, synth_root: Path) -> dict[bool, list[FramePrediction]]:
    return {relabel: propagate(small_model, synth_root, None, relabel) for relabel in (False, True)}


@pytest.fixture(scope="module")
def filled(small_model, synth_root: Path) -> tuple[FeatureCache, list[FramePrediction]]:
    """A cache filled by a first pass over the video, and that pass's records."""
    cache = FeatureCache(1 << 30)
    records = propagate(small_model, synth_root, cache)
    assert (cache.hits, cache.misses, len(cache)) == (0, 6, 6)  # every frame encoded once, kept
    return cache, records


def fpn_bytes(cache: FeatureCache) -> int:
    held = cache.get(VIDEO, 0)
    assert held is not None
    return sum(t.numel() * t.element_size() for t in held[1]["backbone_fpn"])


def test_cached_sessions_equal_uncached_ones_bit_for_bit(
    small_model, synth_root: Path, uncached, filled
) -> None:
    cache, first_pass = filled
    assert_same(first_pass, uncached[False])
    hits, misses, held = cache.hits, cache.misses, cache.bytes
    # A relabel (a new prompt on frame 3) reads every frame from the cache: nothing is encoded.
    assert_same(propagate(small_model, synth_root, cache, relabel=True), uncached[True])
    assert (cache.hits - hits, cache.misses - misses, cache.bytes) == (6, 0, held)


def test_position_encodings_are_held_once(filled) -> None:
    cache, _ = filled
    image, backbone_out = cache.get(VIDEO, 0)
    positions = sum(t.numel() * t.element_size() for t in backbone_out["vision_pos_enc"])
    assert cache.bytes == 6 * fpn_bytes(cache) + positions
    _, other = cache.get(VIDEO, 5)
    assert all(p is q for p, q in zip(backbone_out["vision_pos_enc"], other["vision_pos_enc"], strict=True))
    assert image.shape == (1, 3, 256, 256) and image.stride() == (0, 0, 0, 0)  # a stand-in


def test_budget_bounds_the_frames_held_and_results_stay_the_same(
    small_model, synth_root: Path, uncached, filled
) -> None:
    full = filled[0]
    cache = FeatureCache(full.bytes - 4 * fpn_bytes(full))  # room for the positions and two frames
    assert_same(propagate(small_model, synth_root, cache), uncached[False])
    assert len(cache) == 2 and cache.bytes <= cache.max_bytes
    assert_same(propagate(small_model, synth_root, cache, relabel=True), uncached[True])
    assert (cache.hits, cache.misses) == (2, 10)  # frames 0 and 1 from the cache, the rest encoded


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(InputError, match="expected a budget of 0 or more bytes, got -1"):
        FeatureCache(-1)
