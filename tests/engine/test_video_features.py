"""Video features for every object on every frame (real SAM 2 architecture, small config), and the
session's autocast that never encloses the consumer."""

from pathlib import Path

import numpy as np
import pytest
import torch

from usam_video.config import DatasetConfig
from usam_video.datasets import open_dataset
from usam_video.datasets.synthetic import SyntheticVideoSpec, write_davis_dataset
from usam_video.engine import PropagationSession
from usam_video.engine.features import EMPTY_COLOUR_DISTANCE, VideoFeatureTracker
from usam_video.score_registry import VIDEO_FEATURES
from usam_video.types import ObjectPrompt

F = {name: i for i, name in enumerate(VIDEO_FEATURES)}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vf")
    spec = SyntheticVideoSpec(name="vf", num_frames=14, height=64, width=80, num_objects=2, seed=7)
    write_davis_dataset(root, [spec])
    return root


@pytest.fixture(scope="module")
def late_records(small_model, video: Path):
    """Object a from frame 0, object b entering on frame 6 (mask prompt)."""
    ds = open_dataset(DatasetConfig(name="vf", root=video))
    a, b = ds.prompts("vf")
    late_b = ObjectPrompt(b.object_id, 6, mask=ds.ground_truth("vf", 6).mask_of(b.object_id))
    session = PropagationSession(small_model, ds.frames("vf"))
    session.add_prompt(a)
    session.add_prompt(late_b)
    return list(session.propagate())


def test_features_for_every_object_on_every_frame(late_records) -> None:
    assert len(late_records) == 14
    for r in late_records:
        assert r.video_features is not None
        assert r.video_features.shape == (2, len(VIDEO_FEATURES)) and r.video_features.dtype == np.float32
        # tracked objects have finite features, objects before their first prompt NaN rows
        assert np.isfinite(r.video_features[r.tracked]).all()
        assert np.isnan(r.video_features[~r.tracked]).all()
    assert [r.tracked[1] for r in late_records] == [False] * 6 + [True] * 8


def test_features_match_the_masks_they_describe(late_records) -> None:
    for prev, r in zip(late_records, late_records[1:], strict=False):
        for o in np.nonzero(r.tracked)[0]:
            v = r.video_features[o]
            area = r.masks[o].sum()
            assert v[F["area_fraction"]] == pytest.approx(area / r.masks[o].size, abs=1e-6)
            if prev.tracked[o]:
                inter = (r.masks[o] & prev.masks[o]).sum()
                union = (r.masks[o] | prev.masks[o]).sum()
                expected = inter / union if union else 1.0
                assert v[F["prev_iou"]] == pytest.approx(expected, abs=1e-6)
                assert v[F["area_prev_ratio"]] == pytest.approx(
                    np.log((area + 1) / (prev.masks[o].sum() + 1)), abs=1e-5
                )
                trend = r.object_score_logits[o] - prev.object_score_logits[o]
                assert v[F["object_score_trend"]] == pytest.approx(trend, abs=1e-4)
            others = np.delete(r.masks, o, axis=0).any(axis=0)
            covered = (r.masks[o] & others).sum() / area if area else 0.0
            assert v[F["overlap_others"]] == pytest.approx(covered, abs=1e-6)
            assert -1.0 - 1e-5 <= v[F["ptr_cos_cond"]] <= 1.0 + 1e-5


def test_conditioning_frames_reset_the_clock(late_records) -> None:
    since = np.array([r.video_features[:, F["frames_since_cond"]] for r in late_records])
    np.testing.assert_array_equal(since[:, 0], np.arange(14))
    np.testing.assert_array_equal(since[6:, 1], np.arange(8))  # b's own prompt on frame 6
    entered = late_records[6].video_features[1]
    assert entered[F["prev_iou"]] == 1.0 and entered[F["area_prev_ratio"]] == 0.0
    assert entered[F["area_cond_ratio"]] == 0.0 and entered[F["ptr_cos_cond"]] == pytest.approx(1.0)


def test_tracker_sees_an_identity_switch() -> None:
    """Object 1's mask jumps onto object 0: overlap and previous-frame IoU say so."""
    tracker = VideoFeatureTracker(2, torch.device("cpu"))
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :4, :4] = True
    masks[1, 4:, 4:] = True
    ones, logits = np.ones(2, bool), np.zeros(2, np.float32)
    tracker.update(0, masks, ones, ones, logits, [None, None])
    switched = masks.clone()
    switched[1] = masks[0]
    out = tracker.update(1, switched, ones, np.zeros(2, bool), logits, [None, None])
    assert out[1, F["overlap_others"]] == 1.0 and out[0, F["overlap_others"]] == 1.0
    assert out[1, F["prev_iou"]] == 0.0 and out[0, F["prev_iou"]] == 1.0
    assert out[1, F["frames_since_cond"]] == 1.0
    # the track now follows object 0 smoothly: frame-to-frame features look normal again, their
    # extremes since the conditioning frame remember the jump
    later = tracker.update(2, switched, ones, np.zeros(2, bool), logits, [None, None])
    assert later[1, F["prev_iou"]] == 1.0
    assert later[1, F["min_prev_iou_since_cond"]] == 0.0 and later[1, F["max_overlap_since_cond"]] == 1.0
    # a conditioning frame (a correction) starts the extremes afresh
    fixed = tracker.update(3, masks, ones, np.array([False, True]), logits, [None, None])
    assert fixed[1, F["max_overlap_since_cond"]] == 0.0 and fixed[1, F["frames_since_cond"]] == 0.0
    assert fixed[0, F["max_overlap_since_cond"]] == 1.0  # object 0 had no correction


def test_consumer_never_runs_under_autocast(small_model, video: Path, monkeypatch) -> None:
    """The session's autocast encloses sam2's work, not its ``yield`` (CPU autocast stands in for
    CUDA bf16 here)."""
    ds = open_dataset(DatasetConfig(name="vf", root=video))
    session = PropagationSession(small_model, ds.frames("vf"))
    inside: list[bool] = []
    monkeypatch.setattr(session, "_autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    for p in ds.prompts("vf"):
        session.add_prompt(p)
    for r in session.propagate():
        inside.append(torch.is_autocast_enabled("cpu"))
        # what a consumer computes comes out in float32
        assert (torch.from_numpy(r.iou_tokens) @ torch.from_numpy(r.iou_tokens).T).dtype == torch.float32
        if r.frame_index == 2:
            break
    assert inside == [False, False, False]


@pytest.mark.parametrize("n", [1, 7, 255, 256, 409_920, 1_000_003, 2_073_600])
def test_count_true_is_exact(n: int) -> None:
    """The byte-sum count equals torch's own bool sum, for lengths with and without a divisor
    below 256 (1_000_003 is prime) and for rows all True (no uint8 overflow)."""
    from usam_video.engine.features import count_true

    gen = torch.Generator().manual_seed(n)
    flat = torch.rand(3, n, generator=gen) > 0.4
    flat[2] = True
    np.testing.assert_array_equal(count_true(flat).numpy(), flat.sum(dim=1).numpy().astype(np.float32))
    assert count_true(flat).dtype == torch.float32


# --------------------------------------------------------------------------- batches of frames


def _random_frames(
    seed: int, num_objects: int, num_frames: int = 23, h: int = 20, w: int = 24, grid: int = 16
):
    """Frames as the assembler hands them to the tracker: objects entering late, conditioning
    frames, empty masks, a missing object pointer now and then, and each frame's image (a
    ``grid x grid`` thumbnail, normalised as sam2's input, coarser than the masks)."""
    rng = np.random.default_rng(seed)
    enter = rng.integers(0, 8, num_objects)
    enter[0] = 0
    frames = []
    for t in range(num_frames):
        tracked = t >= enter
        is_cond = ((t == enter) | (rng.random(num_objects) < 0.1)) & tracked
        density = rng.random((num_objects, 1, 1)) * 0.6
        masks = (rng.random((num_objects, h, w)) < density) & tracked[:, None, None]
        if rng.random() < 0.2:
            masks[:] = False
        logits = np.where(tracked, rng.normal(size=num_objects), np.nan).astype(np.float32)
        ptrs = [
            rng.normal(size=16).astype(np.float32) if tracked[o] and rng.random() > 0.05 else None
            for o in range(num_objects)
        ]
        image = rng.normal(size=(3, grid, grid)).astype(np.float32)
        frames.append((t, masks, tracked, is_cond, logits, ptrs, image))
    return frames


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) of ``(N, 3)`` sRGB in [0, 1], float64, from the textbook formulas."""
    c = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], 1)


def _mean_colour(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Mean Lab of ``image`` (normalised ``(3, G, G)``) under ``mask`` (``(H, W)``) sampled at the
    cells' centres and eroded by one cell (the frame's edge does not erode; fewer than 10 cells
    left: the whole sample); NaN for a mask on no cell."""
    from scipy import ndimage

    g = image.shape[1]
    rows = ((np.arange(g) + 0.5) * mask.shape[0] / g).astype(int)
    cols = ((np.arange(g) + 0.5) * mask.shape[1] / g).astype(int)
    cells = mask[np.ix_(rows, cols)]
    core = ndimage.binary_erosion(cells, np.ones((3, 3)), border_value=1)
    use = core if core.sum() >= 10 else cells
    if not use.any():
        return np.full(3, np.nan)
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    rgb = np.clip(image.astype(np.float64) * std + mean, 0.0, 1.0)
    return _lab(rgb[:, use].T).mean(axis=0)


def _reference_features(frames, num_objects: int) -> np.ndarray:
    """The features by their definitions (module docstring of usam_video.engine.features), one
    object and one frame at a time in float64: ``(T, O, F)``."""
    o_n = num_objects
    prev = [None] * o_n
    prev_area = np.zeros(o_n)
    cond_area = np.zeros(o_n)
    bank: list[list[np.ndarray]] = [[] for _ in range(o_n)]
    prev_logit = np.full(o_n, np.nan)
    extremes = np.zeros((o_n, 3))
    last_cond = np.full(o_n, -1)
    seen = np.zeros(o_n, bool)
    reference = np.full((o_n, 3), np.nan)
    out = np.full((len(frames), o_n, len(VIDEO_FEATURES)), np.nan)
    for k, (t, masks, tracked, is_cond, logits, ptrs, image) in enumerate(frames):
        first = ~seen
        seen = seen | tracked
        for i in range(o_n):
            reset = is_cond[i] or first[i]
            if reset:
                last_cond[i] = t
            m = masks[i]
            area = float(m.sum())
            inter = float((m & prev[i]).sum()) if prev[i] is not None else 0.0
            union = area + prev_area[i] - inter
            prev_iou = 1.0 if first[i] else (inter / union if union > 0 else 1.0)
            area_prev = 0.0 if first[i] else np.log((area + 1) / (prev_area[i] + 1))
            colour = _mean_colour(m, image)
            if reset:
                cond_area[i] = area
                reference[i] = colour
            distance = float(np.linalg.norm(colour - reference[i]))
            colour_to_cond = EMPTY_COLOUR_DISTANCE if np.isnan(distance) else distance
            area_cond = np.log((area + 1) / (cond_area[i] + 1))
            others = np.delete(masks, i, axis=0).any(axis=0)
            overlap = float((m & others).sum()) / area if area > 0 else 0.0
            cos = 1.0
            if ptrs[i] is not None and tracked[i]:
                unit = ptrs[i].astype(np.float64) / np.linalg.norm(ptrs[i].astype(np.float64))
                if is_cond[i] or not bank[i]:
                    bank[i].append(unit)
                cos = max(float(b @ unit) for b in bank[i])
            had = not first[i] and not np.isnan(prev_logit[i])
            trend = float(logits[i]) - prev_logit[i] if had else 0.0
            now = np.array([prev_iou, overlap, area_cond])
            kept = now if reset else np.array(
                [min(extremes[i, 0], now[0]), max(extremes[i, 1], now[1]), min(extremes[i, 2], now[2])]
            )  # fmt: skip
            if tracked[i]:
                prev_logit[i] = logits[i]
                extremes[i] = kept
                since = t - last_cond[i]
                out[k, i] = [prev_iou, area_prev, area_cond, overlap, cos, trend, since, area / m.size, *kept,
                             colour_to_cond]  # fmt: skip
            prev[i], prev_area[i] = m, area
    return out


def _run_batched(frames, num_objects: int, batch: int) -> np.ndarray:
    tracker = VideoFeatureTracker(num_objects, torch.device("cpu"))
    outs = []
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch]
        outs.append(
            tracker.update_many(
                [c[0] for c in chunk],
                torch.from_numpy(np.stack([c[1] for c in chunk])),
                np.stack([c[2] for c in chunk]),
                np.stack([c[3] for c in chunk]),
                torch.from_numpy(np.stack([c[4] for c in chunk])),
                [[None if p is None else torch.from_numpy(p) for p in c[5]] for c in chunk],
                torch.from_numpy(np.stack([c[6] for c in chunk])),
            )
        )
    return torch.cat(outs).numpy()


@pytest.mark.parametrize("num_objects", [1, 2, 4])
@pytest.mark.parametrize("batch", [1, 3, 4, 7])
def test_batched_features_follow_their_definitions(num_objects: int, batch: int) -> None:
    """Every feature of every frame, whatever the batch: what carries between frames (previous
    mask and area, conditioning area, last logit, extremes, the pointer bank) crosses batch
    boundaries as it crosses frames."""
    for seed in range(4):
        frames = _random_frames(seed * 10 + num_objects, num_objects)
        expected = _reference_features(frames, num_objects)
        got = _run_batched(frames, num_objects, batch)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        colour = F["colour_to_cond"]
        np.testing.assert_allclose(
            np.delete(got, colour, axis=2), np.delete(expected, colour, axis=2), rtol=0, atol=2e-6
        )
        # Lab in float32 (a cube root, a power 2.4) against float64: a few thousandths of a unit
        # on distances up to ~200.
        np.testing.assert_allclose(got[..., colour], expected[..., colour], rtol=1e-4, atol=2e-3)


def test_batches_agree_with_single_frames() -> None:
    """A batch gives each frame what single frames give it (``update`` is a batch of one)."""
    frames = _random_frames(5, 3)
    single = VideoFeatureTracker(3, torch.device("cpu"))
    rows = []
    for t, m, tr, c, lg, ps, image in frames:
        pointers = [None if p is None else torch.from_numpy(p) for p in ps]
        rows.append(
            single.update(t, torch.from_numpy(m), tr, c, lg, pointers, torch.from_numpy(image)).numpy()
        )
    one_by_one = np.stack(rows)
    np.testing.assert_allclose(_run_batched(frames, 3, 4), one_by_one, rtol=0, atol=1e-6)


def test_assembler_batches_equal_single_frames(small_model, video: Path) -> None:
    """The same propagated frames (real SAM 2, an object entering on frame 6) assembled one at a
    time and in batches of 4 (the last one partial): the same numbers and masks, the same
    features."""
    ds = open_dataset(DatasetConfig(name="vf", root=video))
    a, b = ds.prompts("vf")
    session = PropagationSession(small_model, ds.frames("vf"))
    session.add_prompt(a)
    session.add_prompt(ObjectPrompt(b.object_id, 6, mask=ds.ground_truth("vf", 6).mask_of(b.object_id)))
    frames = list(session.propagate_device())
    single = session.assembler()
    ones = [single.tensors(f) for f in frames]
    batched = session.assembler(batch=4)
    fours = []
    for f in frames:
        batched.add(f)
        if batched.pending == 4:
            fours += batched.flush()
    assert batched.pending == 2
    fours += batched.flush()
    assert batched.flush() == [] and len(fours) == len(ones) == 14
    for x, y in zip(ones, fours, strict=True):
        assert x.frame_index == y.frame_index
        np.testing.assert_array_equal(x.tracked, y.tracked)
        assert torch.equal(x.numbers.nan_to_num(-7.0), y.numbers.nan_to_num(-7.0))
        assert torch.equal(x.masks, y.masks)
        np.testing.assert_allclose(x.video_features.numpy(), y.video_features.numpy(), rtol=0, atol=1e-6)
    assert not fours[0].tracked[1] and fours[6].tracked[1]
    with pytest.raises(RuntimeError, match="at most 4"):
        for f in frames[:5]:
            batched.add(f)
    with pytest.raises(RuntimeError, match="not flushed"):
        batched.tensors(frames[0])


# --------------------------------------------------------------------------- colour


def _normalised(rgb: np.ndarray) -> torch.Tensor:
    """``float`` ``(H, W, 3)`` RGB in [0, 1] -> ``float32`` ``(3, H, W)`` as sam2's input."""
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    return torch.from_numpy(((rgb - mean) / std).transpose(2, 0, 1).astype(np.float32))


def test_colour_to_cond_is_small_on_the_prompts_colour_large_elsewhere() -> None:
    """A 48x64 frame, its model-resolution image 32x32: left half red, right half blue. The prompt
    (conditioning frame) covers part of the red half; later masks on another part of the red half,
    on the blue half, straddling both, and empty."""
    from usam_video.engine.features import EMPTY_COLOUR_DISTANCE

    rgb = np.zeros((32, 32, 3))
    rgb[:, :16] = (0.8, 0.1, 0.1)
    rgb[:, 16:] = (0.1, 0.2, 0.8)
    image = _normalised(rgb)
    h, w = 48, 64
    prompt = np.zeros((h, w), bool)
    prompt[4:24, 2:30] = True
    other_red = np.zeros((h, w), bool)
    other_red[26:46, 4:28] = True
    blue = np.zeros((h, w), bool)
    blue[10:40, 36:60] = True
    straddle = np.zeros((h, w), bool)
    straddle[10:40, 16:48] = True
    frames = [
        (prompt, True),
        (other_red, False),
        (blue, False),
        (straddle, False),
        (np.zeros((h, w), bool), False),
    ]
    tracker = VideoFeatureTracker(1, torch.device("cpu"))
    got = []
    for t, (mask, cond) in enumerate(frames):
        out = tracker.update(
            t, torch.from_numpy(mask[None]), np.ones(1, bool), np.array([cond]), np.zeros(1, np.float32),
            [None], image,
        )  # fmt: skip
        got.append(float(out[0, F["colour_to_cond"]]))
    on_prompt, same_colour, other_colour, half, empty = got
    assert on_prompt == 0.0 and same_colour < 1.0
    # red (Lab ~ 43, 61, 45) against blue (~ 30, 30, -70): over 100 Lab units apart
    assert other_colour > 100.0
    assert 20.0 < half < other_colour
    assert empty == EMPTY_COLOUR_DISTANCE
    # A new conditioning frame on the blue half makes blue the reference.
    out = tracker.update(5, torch.from_numpy(blue[None]), np.ones(1, bool), np.ones(1, bool),
                         np.zeros(1, np.float32), [None], image)  # fmt: skip
    again = tracker.update(6, torch.from_numpy(other_red[None]), np.ones(1, bool), np.zeros(1, bool),
                           np.zeros(1, np.float32), [None], image)  # fmt: skip
    assert float(out[0, F["colour_to_cond"]]) == 0.0
    assert float(again[0, F["colour_to_cond"]]) == pytest.approx(other_colour, rel=1e-3)


def test_colour_to_cond_without_an_image_is_nan_and_changes_no_other_feature() -> None:
    """The colour is the last column; the others are what they were without it."""
    frames = _random_frames(3, 2)
    with_image = _run_batched(frames, 2, 4)
    tracker = VideoFeatureTracker(2, torch.device("cpu"))
    without = tracker.update_many(
        [c[0] for c in frames], torch.from_numpy(np.stack([c[1] for c in frames])),
        np.stack([c[2] for c in frames]), np.stack([c[3] for c in frames]),
        torch.from_numpy(np.stack([c[4] for c in frames])),
        [[None if p is None else torch.from_numpy(p) for p in c[5]] for c in frames],
    ).numpy()  # fmt: skip
    assert VIDEO_FEATURES[-1] == "colour_to_cond"
    assert (
        np.isnan(without[..., -1]).all()
        and np.isfinite(with_image[..., -1][~np.isnan(with_image[..., 0])]).all()
    )
    np.testing.assert_array_equal(without[..., :-1], with_image[..., :-1])


def test_the_session_hands_every_frame_its_image(late_records) -> None:
    """Through a real session (sam2's cached image of each frame), a tracked object's colour is
    finite and 0 on its conditioning frame (its own reference)."""
    for r in late_records:
        v = r.video_features[r.tracked, F["colour_to_cond"]]
        assert np.isfinite(v).all()
    assert late_records[0].video_features[0, F["colour_to_cond"]] == 0.0
    assert late_records[6].video_features[1, F["colour_to_cond"]] == 0.0


def test_colour_thumbnail_is_the_mean_of_each_cell() -> None:
    """SAM 2's 1024 px input: each of the 128 x 128 cells is the mean of its 8 x 8 pixels; a
    small input (micro's 128 px) is kept whole; another size is pooled adaptively."""
    from usam_video.engine.features import colour_thumbnail

    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    thumb = colour_thumbnail(image)
    assert thumb.shape == (3, 128, 128) and thumb.dtype == torch.float32
    expected = image[0].reshape(3, 128, 8, 128, 8).double().mean(dim=(2, 4)).float()
    torch.testing.assert_close(thumb, expected, rtol=0, atol=1e-6)
    small = torch.randn(3, 96, 96)
    assert torch.equal(colour_thumbnail(small[None]), small)
    assert colour_thumbnail(torch.randn(3, 1000, 1000)).shape == (3, 128, 128)
