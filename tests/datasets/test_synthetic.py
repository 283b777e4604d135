"""Tests of the synthetic DAVIS-layout video generator."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from usam_video.datasets.synthetic import (
    MIN_VISIBLE_PIXELS,
    SyntheticVideoSpec,
    make_demo_dataset,
    render_video,
    write_davis_dataset,
)
from usam_video.errors import InputError
from usam_video.palette import read_palette_png


def _image_dir(root: Path, name: str) -> Path:
    return root / "JPEGImages" / "480p" / name


def _mask_dir(root: Path, name: str) -> Path:
    return root / "Annotations" / "480p" / name


def _split_lines(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "2017" / f"{split}.txt").read_text().splitlines()


# --------------------------------------------------------------------------- rendering


def test_same_spec_gives_byte_identical_arrays() -> None:
    spec = SyntheticVideoSpec("a", num_objects=3, seed=7)
    first, second = render_video(spec), render_video(spec)
    assert first.frames.tobytes() == second.frames.tobytes()
    assert first.labels.tobytes() == second.labels.tobytes()


def test_different_seed_gives_different_video() -> None:
    first = render_video(SyntheticVideoSpec("a", seed=0))
    second = render_video(SyntheticVideoSpec("a", seed=1))
    assert not np.array_equal(first.frames, second.frames)
    assert not np.array_equal(first.labels, second.labels)


def test_shapes_dtypes_and_label_values() -> None:
    spec = SyntheticVideoSpec("clip", num_frames=5, height=40, width=72, num_objects=3)
    video = render_video(spec)
    assert video.name == "clip"
    assert video.frames.shape == (5, 40, 72, 3)
    assert video.frames.dtype == np.uint8
    assert video.labels.shape == (5, 40, 72)
    assert video.labels.dtype == np.uint8
    assert set(np.unique(video.labels).tolist()) <= {0, 1, 2, 3}
    # Background is a noisy gradient, not a flat colour.
    background = video.frames[0][video.labels[0] == 0]
    assert background.std(axis=0).min() > 2.0


@pytest.mark.parametrize("num_objects", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("seed", range(10))
def test_every_object_visible_on_frame_zero(num_objects: int, seed: int) -> None:
    spec = SyntheticVideoSpec("v", num_frames=2, num_objects=num_objects, seed=seed)
    counts = np.bincount(render_video(spec).labels[0].ravel(), minlength=num_objects + 1)
    assert counts[1 : num_objects + 1].min() >= MIN_VISIBLE_PIXELS


def test_many_objects_visible_on_frame_zero() -> None:
    spec = SyntheticVideoSpec("v", num_frames=1, height=320, width=352, num_objects=254)
    counts = np.bincount(render_video(spec).labels[0].ravel(), minlength=255)
    assert counts[1:].min() >= MIN_VISIBLE_PIXELS


@pytest.mark.parametrize("seed", range(5))
def test_objects_move(seed: int) -> None:
    video = render_video(SyntheticVideoSpec("v", num_objects=3, seed=seed))
    for object_id in (1, 2, 3):
        first, last = video.labels[0] == object_id, video.labels[-1] == object_id
        assert not np.array_equal(first, last), f"object {object_id} did not move"


def test_object_pixels_have_object_colour() -> None:
    # Labels must match what is drawn: object pixels are saturated, background is muted.
    video = render_video(SyntheticVideoSpec("v", num_objects=2, seed=3))
    frame = video.frames[0].astype(np.int16)
    saturation = frame.max(axis=-1) - frame.min(axis=-1)
    labels = video.labels[0]
    assert np.median(saturation[labels > 0]) > 2 * np.median(saturation[labels == 0])


def test_render_is_fast() -> None:
    # Loose bound (the target is well under 1 s); catches an accidental per-pixel Python loop.
    start = time.perf_counter()
    for seed in range(3):
        render_video(SyntheticVideoSpec("v", num_objects=3, seed=seed))
    assert time.perf_counter() - start < 2.0


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_frames", 0),
        ("num_frames", -3),
        ("num_objects", 0),
        ("num_objects", 255),
        ("height", 8),
        ("width", 4),
        ("seed", -1),
        ("num_frames", 2.5),
        ("num_objects", True),
    ],
)
def test_bad_spec_field_raises(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"SyntheticVideoSpec\.{field}.*{value!r}") as info:
        SyntheticVideoSpec("v", **{field: value})
    assert isinstance(info.value, InputError)


def test_too_many_objects_for_frame_raises() -> None:
    with pytest.raises(InputError, match=r"num_objects=200.*height=64, width=64"):
        SyntheticVideoSpec("v", height=64, width=64, num_objects=200)


@pytest.mark.parametrize("name", ["", "a/b", "../up", ".hidden", "two words", "x\ny"])
def test_bad_name_raises(name: str) -> None:
    with pytest.raises(InputError, match=r"SyntheticVideoSpec\.name"):
        SyntheticVideoSpec(name)


def test_render_rejects_non_spec() -> None:
    with pytest.raises(InputError, match="SyntheticVideoSpec"):
        render_video("not a spec")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- writing


def test_write_layout_counts_and_round_trip(tmp_path: Path) -> None:
    specs = [
        SyntheticVideoSpec("alpha", num_frames=4, num_objects=2, seed=1),
        SyntheticVideoSpec("beta", num_frames=6, height=48, width=64, num_objects=3, seed=2),
    ]
    names = write_davis_dataset(tmp_path, specs, split="val")
    assert names == ["alpha", "beta"]
    assert _split_lines(tmp_path, "val") == ["alpha", "beta"]
    for spec in specs:
        video = render_video(spec)
        jpgs = sorted(_image_dir(tmp_path, spec.name).iterdir())
        pngs = sorted(_mask_dir(tmp_path, spec.name).iterdir())
        expected = [f"{t:05d}" for t in range(spec.num_frames)]
        assert [p.name for p in jpgs] == [f"{stem}.jpg" for stem in expected]
        assert [p.name for p in pngs] == [f"{stem}.png" for stem in expected]
        for t in range(spec.num_frames):
            np.testing.assert_array_equal(read_palette_png(pngs[t]), video.labels[t])
            with Image.open(jpgs[t]) as image:
                assert image.mode == "RGB"
                decoded = np.asarray(image).astype(np.int16)
            assert decoded.shape == video.frames[t].shape
            assert np.abs(decoded - video.frames[t]).mean() < 4.0


def test_first_frame_only_annotation(tmp_path: Path) -> None:
    spec = SyntheticVideoSpec("gamma", num_frames=5)
    write_davis_dataset(tmp_path, [spec], split="test-dev", annotate_all_frames=False)
    assert [p.name for p in _mask_dir(tmp_path, "gamma").iterdir()] == ["00000.png"]
    assert len(list(_image_dir(tmp_path, "gamma").iterdir())) == 5
    assert _split_lines(tmp_path, "test-dev") == ["gamma"]


def test_split_lists_merge(tmp_path: Path) -> None:
    write_davis_dataset(tmp_path, [SyntheticVideoSpec("a"), SyntheticVideoSpec("b")], "val")
    write_davis_dataset(tmp_path, [SyntheticVideoSpec("c")], split="train")
    write_davis_dataset(tmp_path, [SyntheticVideoSpec("b"), SyntheticVideoSpec("d")], "val")
    assert _split_lines(tmp_path, "val") == ["a", "b", "d"]
    assert _split_lines(tmp_path, "train") == ["c"]
    assert not list((tmp_path / "ImageSets" / "2017").glob("*.tmp"))


def test_rewrite_removes_stale_frames(tmp_path: Path) -> None:
    write_davis_dataset(tmp_path, [SyntheticVideoSpec("a", num_frames=6)])
    keep = _image_dir(tmp_path, "a") / "notes.txt"
    keep.write_text("user file")
    write_davis_dataset(tmp_path, [SyntheticVideoSpec("a", num_frames=3)])
    assert len(list(_image_dir(tmp_path, "a").glob("*.jpg"))) == 3
    assert len(list(_mask_dir(tmp_path, "a").glob("*.png"))) == 3
    assert keep.exists()


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least one"):
        write_davis_dataset(tmp_path, [])
    with pytest.raises(InputError, match=r"repeated \['a'\]"):
        write_davis_dataset(tmp_path, [SyntheticVideoSpec("a"), SyntheticVideoSpec("a")])
    with pytest.raises(InputError, match="split"):
        write_davis_dataset(tmp_path, [SyntheticVideoSpec("a")], split="../val")
    assert not (tmp_path / "JPEGImages").exists()


def test_make_demo_dataset(tmp_path: Path) -> None:
    names = make_demo_dataset(tmp_path / "one", num_frames=5, height=48, width=64, seed=3)
    assert names == ["synth-000", "synth-001", "synth-002"]
    assert _split_lines(tmp_path / "one", "val") == names
    for index, name in enumerate(names):
        masks = sorted(_mask_dir(tmp_path / "one", name).iterdir())
        assert len(masks) == 5
        assert len(list(_image_dir(tmp_path / "one", name).iterdir())) == 5
        ids = set(np.unique(read_palette_png(masks[0])).tolist()) - {0}
        assert ids == set(range(1, 2 + index % 3))

    # Same arguments give the same dataset; videos differ from each other.
    make_demo_dataset(tmp_path / "two", num_frames=5, height=48, width=64, seed=3)
    for name in names:
        for t in range(5):
            a = _mask_dir(tmp_path / "one", name) / f"{t:05d}.png"
            b = _mask_dir(tmp_path / "two", name) / f"{t:05d}.png"
            np.testing.assert_array_equal(read_palette_png(a), read_palette_png(b))
            a = _image_dir(tmp_path / "one", name) / f"{t:05d}.jpg"
            b = _image_dir(tmp_path / "two", name) / f"{t:05d}.jpg"
            assert a.read_bytes() == b.read_bytes()
    first = _image_dir(tmp_path / "one", "synth-000") / "00000.jpg"
    second = _image_dir(tmp_path / "one", "synth-001") / "00000.jpg"
    assert first.read_bytes() != second.read_bytes()


def test_make_demo_dataset_rejects_zero_videos(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"num_videos.*0"):
        make_demo_dataset(tmp_path, num_videos=0)
