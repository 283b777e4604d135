"""Tests of the generator's rich style (what the project's SAM 2 models learn from)."""

from __future__ import annotations

import numpy as np
import pytest

from usam_video.datasets.synthetic import (
    GENERATED_STREAMS,
    MIN_VISIBLE_PIXELS,
    SyntheticVideoSpec,
    generated_specs,
    render_video,
    write_davis_dataset,
)
from usam_video.errors import InputError


def _rich(num_objects: int = 3, seed: int = 0, frames: int = 40) -> SyntheticVideoSpec:
    return SyntheticVideoSpec("r", frames, 96, 128, num_objects, seed=seed, style="rich")


def test_rich_is_deterministic_and_differs_from_simple() -> None:
    first, second = render_video(_rich()), render_video(_rich())
    assert np.array_equal(first.frames, second.frames) and np.array_equal(first.labels, second.labels)
    simple = render_video(SyntheticVideoSpec("r", 40, 96, 128, 3, seed=0))
    assert not np.array_equal(first.frames, simple.frames)


@pytest.mark.parametrize("seed", range(8))
def test_rich_objects_visible_on_frame_zero(seed: int) -> None:
    video = render_video(_rich(num_objects=1 + seed % 4, seed=seed))
    for object_id in range(1, 2 + seed % 4):
        assert np.count_nonzero(video.labels[0] == object_id) >= MIN_VISIBLE_PIXELS


def test_camera_pans_over_a_textured_background() -> None:
    # The background moves: with the objects masked out, consecutive frames of some videos
    # differ by more than the sensor noise (sigma 2), which a still camera never does.
    moved = 0
    for seed in range(6):
        video = render_video(_rich(num_objects=1, seed=seed, frames=12))
        background = (video.labels[0] == 0) & (video.labels[-1] == 0)
        diff = np.abs(video.frames[0].astype(float) - video.frames[-1].astype(float))[background].mean()
        moved += diff > 6.0
        # Textured: not a smooth gradient (high local variation, beyond the noise).
        assert np.abs(np.diff(video.frames[0].astype(float), axis=1))[background[:, 1:]].mean() > 2.0
    assert moved >= 3


def test_objects_leave_and_come_back() -> None:
    # Over many seeds, some object is absent on a middle frame and visible again later.
    found = False
    for seed in range(30):
        video = render_video(_rich(num_objects=2, seed=seed, frames=60))
        for object_id in (1, 2):
            area = (video.labels == object_id).reshape(60, -1).sum(axis=1)
            gone = np.nonzero(area == 0)[0]
            if len(gone) and (area[gone[0] :] > 0).any():
                found = True
    assert found


def test_objects_change_shape_over_time() -> None:
    # Scaling and deformation: an object's area varies by more than 30 % over the video.
    ratios = []
    for seed in range(6):
        video = render_video(_rich(num_objects=1, seed=seed))
        area = (video.labels == 1).reshape(len(video.labels), -1).sum(axis=1)
        visible = area[area > 0]
        ratios.append(visible.max() / visible.min())
    assert max(ratios) > 1.3


def test_generated_specs_streams_are_disjoint() -> None:
    seeds = {p: {s.seed for s in generated_specs(p, 20)} for p in GENERATED_STREAMS}
    assert all(len(v) == 20 for v in seeds.values())
    names = list(seeds)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not seeds[a] & seeds[b]
    spec = generated_specs("val", 3)[2]
    assert spec.name == "val-002" and spec.num_objects == 3 and spec.style == "rich"


def test_generated_specs_rejects_bad_purpose() -> None:
    with pytest.raises(InputError, match="'train'"):
        generated_specs("train", 2)


def test_bad_style_is_named() -> None:
    with pytest.raises(InputError, match="style.*'fancy'"):
        SyntheticVideoSpec("r", style="fancy")


def test_write_rich_dataset(tmp_path) -> None:
    names = write_davis_dataset(tmp_path, generated_specs("test", 2, num_frames=5), split="test")
    assert names == ["test-000", "test-001"]
    assert len(list((tmp_path / "JPEGImages" / "480p" / "test-001").glob("*.jpg"))) == 5
