"""Rendering synthetic videos of moving shapes with exact ground truth (numpy only, no files).

The pipeline needs a dataset it can run end to end without downloading DAVIS or MOSE: in
tests, in CI and in the demo; the project's SAM 2 models are trained on such clips. This module
renders short videos of coloured shapes (ellipses, rectangles, convex polygons, deforming blobs)
drifting over a noisy background, together with their exact per-pixel labels;
:mod:`usam_video.datasets.synthetic` writes them in the layouts the readers serve. Objects can
enter mid-video (``render_video(spec, entry_frames=...)``).

Everything is drawn from one ``numpy.random.Generator`` seeded by the spec, so the same spec
gives byte-identical arrays on every run. Rendering uses numpy only (coordinate grids and
inequality masks), so the module needs no OpenCV.
"""

from __future__ import annotations

import colorsys
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from usam_video.config import TrainingRecipe
from usam_video.errors import InputError

__all__ = [
    "GENERATED_STREAMS",
    "MAX_FRAMES",
    "MAX_OBJECTS",
    "MIN_SIDE",
    "MIN_VISIBLE_PIXELS",
    "STYLES",
    "SyntheticVideo",
    "SyntheticVideoSpec",
    "check_int",
    "check_name",
    "generated_specs",
    "render_video",
    "training_clip",
    "training_clip_spec",
]

#: Smallest allowed frame height and width in pixels.
MIN_SIDE = 32
#: Most objects per video: 0 is background and 255 is the DAVIS "void" index.
MAX_OBJECTS = 254
#: Most frames per video: file names are ``%05d``, so frame 100000 would break the sort order.
MAX_FRAMES = 99_999
#: Every object covers at least this many pixels on frame 0, so a first-frame mask prompt exists.
MIN_VISIBLE_PIXELS = 20
#: Rendering styles of :class:`SyntheticVideoSpec`.
STYLES = ("simple", "rich")

# Side of the smallest frame-0 layout cell. A shape of circumradius >= 0.25 * cell fits inside its
# cell and covers > MIN_VISIBLE_PIXELS pixels (a triangle of circumradius 5 covers ~32 px).
_MIN_CELL = 20
# Sequence names become directory names and lines of the split list: keep them path- and
# line-safe (no separators, no whitespace, no leading dot).
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")

_ELLIPSE, _RECTANGLE, _POLYGON, _BLOB = 0, 1, 2, 3


@dataclass(frozen=True)
class SyntheticVideoSpec:
    """What to render: one video of ``num_objects`` moving shapes.

    Attributes:
        name: Sequence name, used as folder name and split-list line
            (letters, digits, ``.``, ``_``, ``-``; not starting with ``.``, ``_`` or ``-``).
        num_frames: Number of frames T, 1..99999.
        height: Frame height H in pixels, >= 32.
        width: Frame width W in pixels, >= 32.
        num_objects: Number of objects N, 1..254; the frame must leave each object a
            20x20 px cell on frame 0.
        seed: Non-negative seed of the ``numpy.random.Generator``. The content depends on the
            seed, the sizes and the style only, not on ``name``.
        style: ``"simple"``: rigid shapes of flat colour drifting over a still, smooth
            background, never leaving the frame. ``"rich"`` (what the project's SAM 2 models
            are trained and validated on): textured objects including deforming blobs,
            stronger scaling and rotation, a panning camera over a textured background,
            objects that leave the frame and come back, and unlabelled distractors of
            similar colour to the objects.

    Raises:
        InputError: (a ``ValueError``) a field is out of range; the message names the field
            and the value.
    """

    name: str
    num_frames: int = 12
    height: int = 96
    width: int = 128
    num_objects: int = 2
    seed: int = 0
    style: str = "simple"

    def __post_init__(self) -> None:
        # Validate at construction so a bad spec fails where it is written, not deep inside
        # a dataset write that has already produced half of its files.
        check_name("SyntheticVideoSpec.name", self.name)
        check_int("SyntheticVideoSpec.num_frames", self.num_frames, 1, MAX_FRAMES)
        check_int("SyntheticVideoSpec.height", self.height, MIN_SIDE, None)
        check_int("SyntheticVideoSpec.width", self.width, MIN_SIDE, None)
        check_int("SyntheticVideoSpec.num_objects", self.num_objects, 1, MAX_OBJECTS)
        check_int("SyntheticVideoSpec.seed", self.seed, 0, None)
        if self.style not in STYLES:
            raise InputError(f"SyntheticVideoSpec.style: expected one of {list(STYLES)}, got {self.style!r}.")
        rows, cols = _layout_grid(self.num_objects, self.height, self.width)
        cell = min(self.height / rows, self.width / cols)
        if cell < _MIN_CELL:
            raise InputError(
                f"SyntheticVideoSpec: expected a frame large enough for num_objects="
                f"{self.num_objects} (each needs a {_MIN_CELL}x{_MIN_CELL} px cell on frame 0), "
                f"got height={self.height}, width={self.width}. "
                "Use a larger frame or fewer objects."
            )


@dataclass(frozen=True)
class SyntheticVideo:
    """A rendered video and its ground truth.

    Attributes:
        name: Sequence name (``SyntheticVideoSpec.name``).
        frames: ``uint8`` array ``(T, H, W, 3)``, RGB.
        labels: ``uint8`` array ``(T, H, W)`` of index maps: 0 background, 1..N object ids.
            Where objects overlap the label is the top one (the highest id).
    """

    name: str
    frames: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class _Shape:
    """One object's appearance and motion; coordinates in pixels, pixel i spans [i, i + 1)."""

    kind: int
    params: np.ndarray  # ellipse: (a, b) semi-axes; rectangle: (a, b) half-sides; polygon: (K, 2)
    radius: float  # circumradius at scale 1, bounds the shape for cropping
    color: np.ndarray  # float32 (3,), RGB 0..255
    cy: np.ndarray  # float64 (T,) centre row per frame
    cx: np.ndarray  # float64 (T,) centre column per frame
    angle: np.ndarray  # float64 (T,) rotation in radians per frame
    scale: np.ndarray  # float64 (T,) size factor per frame, 1 on frame 0
    # Rich style only (defaults keep the simple style's rendering):
    stretch: np.ndarray | None = None  # float64 (T,) anisotropic squash/stretch of u vs v, 1 = none
    blob: np.ndarray | None = None  # blob radial profile: (K, 3) rows (amplitude, frequency, phase speed)
    texture: np.ndarray | None = None  # (kind, frequency, angle, strength, phase)


def render_video(spec: SyntheticVideoSpec, entry_frames: Mapping[int, int] | None = None) -> SyntheticVideo:
    """Render ``spec`` into frames and labels.

    Objects start in distinct cells of a grid so that none hides another on frame 0 (each
    covers >= ``MIN_VISIBLE_PIXELS`` px there); afterwards they drift, rotate, pulse slightly
    in size and may overlap, later ids drawn on top. Centres bounce off the frame borders so
    objects never leave the frame entirely.

    Args:
        spec: what to render.
        entry_frames: ``{object id: frame}`` for objects that enter mid-video: such an object
            is neither drawn nor labelled before that frame (objects tracked from their own
            first frame, as in MOSE and SA-V). Its first visible frame may still be later if
            a higher id hides it there.

    Returns:
        A :class:`SyntheticVideo` with ``frames`` ``uint8 (T, H, W, 3)`` and ``labels``
        ``uint8 (T, H, W)``. The same arguments give byte-identical arrays.

    Raises:
        InputError: ``spec`` is not a :class:`SyntheticVideoSpec`, or an entry names an
            object outside 1..N or a frame outside 0..T-1.
    """
    if not isinstance(spec, SyntheticVideoSpec):
        raise InputError(f"render_video: expected a SyntheticVideoSpec, got {type(spec).__name__}.")
    entries = dict(entry_frames or {})
    for object_id, frame in entries.items():
        check_int("render_video: entry_frames object id", object_id, 1, spec.num_objects)
        check_int(f"render_video: entry_frames[{object_id}]", frame, 0, spec.num_frames - 1)
    if spec.style == "rich":
        return _render_rich(spec, entries)
    rng = np.random.default_rng(spec.seed)
    num_frames, height, width = spec.num_frames, spec.height, spec.width

    # Fixed draw order (background, layout, objects, noise) keeps outputs reproducible.
    background = _background(rng, height, width)
    shapes = _sample_shapes(rng, spec)
    # Per-frame sensor noise, so consecutive frames are not pixel-identical and the objects
    # get some texture too; low sigma so JPEG and colour cues stay clean.
    noise = rng.standard_normal((num_frames, height, width, 3), dtype=np.float32) * 2.0

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    labels = np.zeros((num_frames, height, width), dtype=np.uint8)
    for t in range(num_frames):
        canvas = background.copy()
        for object_id, shape in enumerate(shapes, start=1):
            if t >= entries.get(object_id, 0):
                _draw(canvas, labels[t], shape, t, object_id)
        canvas += noise[t]
        np.clip(np.rint(canvas), 0, 255, out=canvas)
        frames[t] = canvas.astype(np.uint8)
    return SyntheticVideo(name=spec.name, frames=frames, labels=labels)


#: Seed streams of the generated datasets: ``SeedSequence([seed, stream, index])``. Stream 1 is
#: reserved for training clips (:func:`training_clip_spec`), so a validation
#: or heads video never equals a clip a model was trained on.
GENERATED_STREAMS: dict[str, int] = {"val": 3, "heads": 4, "test": 5, "pool": 6, "scale": 7}


def generated_specs(
    purpose: str,
    count: int,
    num_frames: int = 24,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    max_objects: int = 3,
) -> list[SyntheticVideoSpec]:
    """Specs of ``count`` rich-style videos named ``<purpose>-000`` ... for a ``purpose``.

    ``purpose`` is one of :data:`GENERATED_STREAMS` (``val``: validation figures, ``heads``:
    videos the USAM heads are trained on, ``test``: the fixed videos of the quality tests);
    each purpose has its own seed stream, disjoint from the training clips'. Video ``i`` has
    ``1 + i % max_objects`` objects.

    Raises:
        InputError: an unknown purpose, or a count or size out of range.
    """
    if purpose not in GENERATED_STREAMS:
        raise InputError(
            f"generated_specs: expected a purpose in {list(GENERATED_STREAMS)}, got {purpose!r}."
        )
    check_int("generated_specs: count", count, 1, 100_000)
    check_int("generated_specs: max_objects", max_objects, 1, MAX_OBJECTS)
    stream = GENERATED_STREAMS[purpose]
    return [
        SyntheticVideoSpec(
            name=f"{purpose}-{index:03d}",
            num_frames=num_frames,
            height=height,
            width=width,
            num_objects=1 + index % max_objects,
            seed=int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0]),
            style="rich",
        )
        for index in range(count)
    ]


def training_clip_spec(recipe: TrainingRecipe, step: int, name: str = "train") -> SyntheticVideoSpec:
    """The generated clip of training step ``step`` (deterministic from the recipe's seed).

    Training seeds come from ``SeedSequence([seed, 1, step])``; validation videos use other
    spawn keys (:data:`GENERATED_STREAMS`), so no validation video is ever trained on.
    """
    state = np.random.SeedSequence([recipe.seed, 1, step]).generate_state(2)
    num_objects = 1 + int(state[1] % recipe.max_objects)
    return SyntheticVideoSpec(
        name=name,
        num_frames=recipe.clip_frames,
        height=recipe.height,
        width=recipe.width,
        num_objects=num_objects,
        seed=int(state[0]),
        style="rich",
    )


def training_clip(recipe: TrainingRecipe, step: int) -> SyntheticVideo:
    """The rendered clip of training step ``step``: frames ``uint8`` ``(T, H, W, 3)`` and labels
    ``uint8`` ``(T, H, W)`` (what :func:`usam_video.engine.train_sam2.train_sam2` trains on)."""
    return render_video(training_clip_spec(recipe, step))


# --------------------------------------------------------------------------- validation


def check_int(field: str, value: object, low: int, high: int | None) -> None:
    """Raise InputError unless ``value`` is an int in ``[low, high]`` (``high=None``: no cap)."""
    # bool is an int subclass, but True as a frame count is surely a mistake.
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = int(value)
        if number >= low and (high is None or number <= high):
            return
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    raise InputError(f"{field}: expected {expected}, got {value!r}.")


def check_name(field: str, value: object) -> None:
    """Raise InputError unless ``value`` is a path- and line-safe name."""
    if isinstance(value, str) and _NAME_RE.match(value):
        return
    raise InputError(
        f"{field}: expected a name of letters, digits, '.', '_' or '-' starting with a letter "
        f"or digit, got {value!r}."
    )


# --------------------------------------------------------------------------- rendering


def _layout_grid(num_objects: int, height: int, width: int) -> tuple[int, int]:
    """Return ``(rows, cols)`` with ``rows * cols >= num_objects`` maximising the cell side."""
    best = (1, num_objects)
    best_side = -1.0
    for cols in range(1, num_objects + 1):
        rows = math.ceil(num_objects / cols)
        side = min(height / rows, width / cols)
        if side > best_side:
            best, best_side = (rows, cols), side
    return best


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Return a float32 ``(H, W, 3)`` muted linear gradient plus static fine texture."""
    # Muted (low-saturation) colours so the saturated objects stand out from the background.
    grey = rng.uniform(60.0, 170.0, size=2)
    tint = rng.uniform(-25.0, 25.0, size=(2, 3))
    start, end = grey[0] + tint[0], grey[1] + tint[1]
    direction = rng.uniform(0.0, 2.0 * math.pi)
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    ramp = xs * math.cos(direction) + ys * math.sin(direction)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    gradient = start[None, None, :] * (1.0 - ramp[..., None]) + end[None, None, :] * ramp[..., None]
    # Static fine texture: real backgrounds are not smooth, and a fixed pattern (unlike the
    # per-frame noise) is consistent over time, as a still camera would see it.
    texture = rng.normal(0.0, 5.0, size=(height, width, 1))
    return (gradient + texture).astype(np.float32)


def _sample_shapes(rng: np.random.Generator, spec: SyntheticVideoSpec) -> list[_Shape]:
    """Draw appearance and trajectory of every object.

    The order of the draws from ``rng`` decides every generated video: it must not change.
    """
    height, width, count = spec.height, spec.width, spec.num_objects
    rows, cols = _layout_grid(count, height, width)
    cells = rng.permutation(rows * cols)[:count]
    cell_h, cell_w = height / rows, width / cols
    hue_offset = rng.uniform(0.0, 1.0)
    t = np.arange(spec.num_frames, dtype=np.float64)
    short_side = min(height, width)

    shapes = []
    for index, cell in enumerate(cells):
        row, col = divmod(int(cell), cols)
        half = min(cell_h, cell_w) / 2.0
        radius = half * rng.uniform(0.5, 0.75)
        # Centre at least `radius` inside the cell: the shape stays in its cell on frame 0, so
        # no object hides another there and each is fully inside the frame.
        cy0 = rng.uniform(row * cell_h + radius, (row + 1) * cell_h - radius)
        cx0 = rng.uniform(col * cell_w + radius, (col + 1) * cell_w - radius)
        kind, params = _sample_outline(rng, radius)

        hue = (hue_offset + index / count) % 1.0
        rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0))
        color = np.array(rgb, dtype=np.float32) * 255.0

        cy, cx = _sample_path(rng, cy0, cx0, t, short_side)
        angle = rng.uniform(0.0, 2.0 * math.pi) + rng.uniform(-0.05, 0.05) * t
        scale = 1.0 + rng.uniform(0.05, 0.15) * np.sin(rng.uniform(0.2, 0.5) * t)
        shapes.append(
            _Shape(
                kind=kind,
                params=params,
                radius=radius,
                color=color,
                cy=_bounce(cy, height),
                cx=_bounce(cx, width),
                angle=angle,
                scale=scale,
            )
        )
    _ensure_visible_on_first_frame(shapes, height, width, min(cell_h, cell_w) / 2.0 * 0.75)
    return shapes


def _sample_outline(rng: np.random.Generator, radius: float) -> tuple[int, np.ndarray]:
    """Draw a shape's kind and outline within a circle of ``radius``: ``(kind, params)``, the
    ellipse's two semi-axes, the rectangle's two half-sides, or the polygon's ``(sides, 2)``
    vertices (float64), all relative to the centre."""
    kind = int(rng.integers(3))
    if kind == _ELLIPSE:
        params = np.array([radius, radius * rng.uniform(0.6, 1.0)])
    elif kind == _RECTANGLE:
        # Half-diagonal equals radius, so any rotation stays within the circumcircle.
        corner = rng.uniform(math.pi / 6.0, math.pi / 3.0)
        params = np.array([radius * math.cos(corner), radius * math.sin(corner)])
    else:
        # Vertices on the circumcircle with angles jittered by < half a step: still sorted,
        # hence convex, and every gap < pi, hence the centre is inside.
        sides = int(rng.integers(3, 7))
        steps = np.arange(sides) + rng.uniform(-0.15, 0.15, size=sides)
        angles = 2.0 * math.pi * steps / sides
        params = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return kind, params


def _sample_path(
    rng: np.random.Generator, cy0: float, cx0: float, t: np.ndarray, short_side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a centre's path from ``(cy0, cx0)`` over the frames ``t`` (float64 ``(T,)``):
    ``(cy, cx)`` float64 ``(T,)``, not yet folded into the frame."""
    # Constant drift plus a sideways sinusoidal wobble that is 0 on frame 0, scaled to the
    # frame so motion is visible (~1-2.5 px/frame at 96 px) at any size.
    heading = rng.uniform(0.0, 2.0 * math.pi)
    speed = rng.uniform(0.6, 1.6) * short_side / 64.0
    wobble_amp = rng.uniform(0.0, 0.05) * short_side
    wobble_freq = rng.uniform(0.2, 0.6)
    wobble_phase = rng.uniform(0.0, 2.0 * math.pi)
    wobble = wobble_amp * (np.sin(wobble_freq * t + wobble_phase) - math.sin(wobble_phase))
    cy = cy0 + speed * t * math.sin(heading) + wobble * math.cos(heading)
    cx = cx0 + speed * t * math.cos(heading) - wobble * math.sin(heading)
    return cy, cx


def _ensure_visible_on_first_frame(
    shapes: list[_Shape], height: int, width: int, fallback_radius: float
) -> None:
    """Guarantee the frame-0 prompt, in place: a shape too thin to cover MIN_VISIBLE_PIXELS
    after rasterisation (unlikely, given _MIN_CELL) becomes a disc of ``fallback_radius`` (3/4
    of its cell). Draws nothing from the random generator."""
    scratch = np.zeros((height, width), dtype=np.uint8)
    canvas = np.zeros((height, width, 3), dtype=np.float32)
    for index, shape in enumerate(shapes):
        scratch[:] = 0
        _draw(canvas, scratch, shape, 0, 1)
        if np.count_nonzero(scratch) < MIN_VISIBLE_PIXELS:
            radius = fallback_radius
            shapes[index] = _Shape(
                kind=_ELLIPSE,
                params=np.array([radius, radius]),
                radius=radius,
                color=shape.color,
                cy=shape.cy,
                cx=shape.cx,
                angle=shape.angle,
                scale=shape.scale,
            )


def _bounce(position: np.ndarray, length: int) -> np.ndarray:
    """Reflect positions into ``[0, length]`` (a centre bouncing off the borders)."""
    period = 2.0 * length
    folded = np.mod(position, period)
    return np.where(folded > length, period - folded, folded)


def _draw(
    canvas: np.ndarray,
    label: np.ndarray,
    shape: _Shape,
    t: int,
    object_id: int,
    shift: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Paint ``shape`` at frame ``t`` into ``canvas`` (float32 HxWx3) and ``label`` (uint8 HxW).

    ``shift`` ``(dy, dx)`` is subtracted from the shape's centre (the camera's displacement
    since frame 0 in the rich style). Only the shape's bounding box is evaluated, so cost
    scales with object size, not with the frame size times the number of objects.
    """
    height, width = label.shape
    cy, cx, scale = shape.cy[t] - shift[0], shape.cx[t] - shift[1], shape.scale[t]
    stretch = 1.0 if shape.stretch is None else float(shape.stretch[t])
    extent = shape.radius * scale * max(stretch, 1.0 / stretch) + 1.0
    r0, r1 = max(math.floor(cy - extent), 0), min(math.ceil(cy + extent), height)
    c0, c1 = max(math.floor(cx - extent), 0), min(math.ceil(cx + extent), width)
    if r0 >= r1 or c0 >= c1:
        return
    dy = (np.arange(r0, r1, dtype=np.float64) + 0.5 - cy)[:, None]
    dx = (np.arange(c0, c1, dtype=np.float64) + 0.5 - cx)[None, :]
    cos_a, sin_a = math.cos(shape.angle[t]), math.sin(shape.angle[t])
    # Pixel centres in the shape's own (unrotated, unscaled) frame.
    u = (cos_a * dx + sin_a * dy) / scale
    v = (-sin_a * dx + cos_a * dy) / scale
    if stretch != 1.0:
        # Area-preserving squash and stretch along the shape's own axes (a deformation).
        u, v = u / stretch, v * stretch

    if shape.kind == _BLOB:
        # Star-shaped blob whose radial profile moves over time: a non-rigid deformation.
        assert shape.blob is not None
        a = shape.params[0]
        theta = np.arctan2(v, u)
        profile = np.ones_like(theta)
        for amplitude, frequency, speed in shape.blob:
            profile += amplitude * np.sin(frequency * theta + speed * t)
        inside = u * u + v * v <= (a * profile) ** 2
    elif shape.kind == _ELLIPSE:
        a, b = shape.params
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    elif shape.kind == _RECTANGLE:
        a, b = shape.params
        inside = (np.abs(u) <= a) & (np.abs(v) <= b)
    else:
        # Convex polygon with counter-clockwise vertices: inside iff left of every edge.
        inside = np.ones(u.shape, dtype=bool)
        vertices = shape.params
        for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
            inside &= (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0) >= 0.0

    # Mild linear shading across the object so it is not a flat colour patch.
    shade = 1.0 + 0.12 * u / shape.radius
    if shape.texture is not None:
        # A pattern fixed to the object (it moves, turns and scales with it).
        kind, frequency, direction, strength, phase = shape.texture
        along = u * math.cos(direction) + v * math.sin(direction)
        if kind == 0:  # stripes
            pattern = np.sin(frequency * along + phase)
        elif kind == 1:  # checks
            across = -u * math.sin(direction) + v * math.cos(direction)
            pattern = np.sign(np.sin(frequency * along + phase) * np.sin(frequency * across))
        else:  # rings
            pattern = np.sin(frequency * np.sqrt(u * u + v * v) + phase)
        shade = shade * (1.0 + strength * pattern)
    shade = shade[inside].astype(np.float32)
    canvas[r0:r1, c0:c1][inside] = shape.color[None, :] * shade[:, None]
    label[r0:r1, c0:c1][inside] = object_id


# --------------------------------------------------------------------------- rich style


def _render_rich(spec: SyntheticVideoSpec, entries: Mapping[int, int]) -> SyntheticVideo:
    """Render the ``"rich"`` style (see :class:`SyntheticVideoSpec`)."""
    rng = np.random.default_rng(spec.seed)
    num_frames, height, width = spec.num_frames, spec.height, spec.width
    short_side = min(height, width)
    t = np.arange(num_frames, dtype=np.float64)

    # Camera: the frame is a window moving over a larger background; its displacement since
    # frame 0 also shifts every object, as a panning camera sees the whole scene move.
    margin = max(4, int(0.2 * short_side))
    pan_speed = rng.uniform(0.0, 1.0) * short_side / 96.0
    pan_heading = rng.uniform(0.0, 2.0 * math.pi)
    start = rng.uniform(0.0, 2.0 * margin, size=2)
    pan_y = _bounce(start[0] + pan_speed * t * math.sin(pan_heading), 2 * margin)
    pan_x = _bounce(start[1] + pan_speed * t * math.cos(pan_heading), 2 * margin)
    background = _rich_background(rng, height + 2 * margin, width + 2 * margin)

    shapes = _sample_shapes(rng, spec)
    hues = [colorsys.rgb_to_hsv(*(shape.color / 255.0))[0] for shape in shapes]
    shapes = [_enrich(rng, shape, spec, exits=bool(rng.uniform() < 0.35)) for shape in shapes]
    # Unlabelled distractors of nearly the same hue as an object, drawn behind the objects.
    distractors = []
    for _ in range(int(rng.integers(0, 3))):
        base = _random_free_shape(rng, spec, hue=hues[int(rng.integers(len(hues)))])
        distractors.append(_enrich(rng, base, spec, exits=True))
    noise = rng.standard_normal((num_frames, height, width, 3), dtype=np.float32) * 2.0

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    labels = np.zeros((num_frames, height, width), dtype=np.uint8)
    scratch = np.zeros((height, width), dtype=np.uint8)
    for index in range(num_frames):
        oy, ox = int(round(pan_y[index])), int(round(pan_x[index]))
        canvas = background[oy : oy + height, ox : ox + width].copy()
        shift = (oy - int(round(pan_y[0])), ox - int(round(pan_x[0])))
        for shape in distractors:
            _draw(canvas, scratch, shape, index, 1, shift)
        for object_id, shape in enumerate(shapes, start=1):
            if index >= entries.get(object_id, 0):
                _draw(canvas, labels[index], shape, index, object_id, shift)
        canvas += noise[index]
        np.clip(np.rint(canvas), 0, 255, out=canvas)
        frames[index] = canvas.astype(np.uint8)
    return SyntheticVideo(name=spec.name, frames=frames, labels=labels)


def _rich_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A float32 ``(H, W, 3)`` background: gradient, soft colour blobs, a grating, fine grain."""
    base = _background(rng, height, width)
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    for _ in range(int(rng.integers(3, 7))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        sigma = rng.uniform(0.08, 0.3) * min(height, width)
        weight = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2.0 * sigma * sigma))
        # Muted colours (saturation <= 0.45) so the objects stay the most saturated things.
        rgb = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 0.45), rng.uniform(0.3, 0.8))
        tint = np.array(rgb, dtype=np.float32) * 255.0 - base.mean(axis=(0, 1))
        base += weight[..., None] * tint[None, None, :] * rng.uniform(0.3, 0.7)
    direction = rng.uniform(0.0, math.pi)
    period = rng.uniform(6.0, 24.0)
    grating = np.sin(2.0 * math.pi * (xs * math.cos(direction) + ys * math.sin(direction)) / period)
    base += (grating * rng.uniform(3.0, 12.0))[..., None]
    return base.astype(np.float32)


def _texture(rng: np.random.Generator, radius: float) -> np.ndarray:
    kind = int(rng.integers(3))
    frequency = 2.0 * math.pi / max(2.5, radius * rng.uniform(0.25, 0.8))
    return np.array(
        [kind, frequency, rng.uniform(0.0, math.pi), rng.uniform(0.05, 0.25), rng.uniform(0, 6.3)]
    )


def _enrich(rng: np.random.Generator, shape: _Shape, spec: SyntheticVideoSpec, exits: bool) -> _Shape:
    """Give a simple-style shape the rich style's motion, deformation and texture.

    The frame-0 pose is unchanged (scale and stretch are 1 there), so the layout guarantee of
    :func:`_sample_shapes` (every object visible on frame 0) still holds.
    """
    num_frames, height, width = spec.num_frames, spec.height, spec.width
    t = np.arange(num_frames, dtype=np.float64)
    short_side = min(height, width)
    kind, params = shape.kind, shape.params
    blob = None
    if rng.uniform() < 0.35:
        # Blob: circumradius stays <= the original radius (it stays inside its frame-0 cell).
        count = int(rng.integers(2, 4))
        amplitudes = rng.uniform(0.05, 0.3 / count, size=count)
        blob = np.stack(
            [
                amplitudes,
                rng.integers(2, 6, size=count).astype(np.float64),
                rng.uniform(-0.3, 0.3, size=count),
            ],
            axis=1,
        )
        kind, params = _BLOB, np.array([shape.radius / (1.0 + amplitudes.sum())])
    heading = rng.uniform(0.0, 2.0 * math.pi)
    speed = rng.uniform(0.4, 2.0) * short_side / 64.0
    wobble = rng.uniform(0.0, 0.06) * short_side * np.sin(rng.uniform(0.2, 0.6) * t)
    cy = shape.cy[0] + speed * t * math.sin(heading) + wobble * math.cos(heading)
    cx = shape.cx[0] + speed * t * math.cos(heading) - wobble * math.sin(heading)
    # Objects that exit bounce off a border far enough outside the frame to vanish entirely.
    out = 2.5 * shape.radius if exits else 0.0
    cy = _bounce(cy + out, int(height + 2 * out)) - out
    cx = _bounce(cx + out, int(width + 2 * out)) - out
    angle = shape.angle[0] + rng.uniform(-0.12, 0.12) * t
    scale = 1.0 + rng.uniform(0.1, 0.35) * np.sin(rng.uniform(0.05, 0.25) * t) * rng.choice([-1.0, 1.0])
    stretch = 1.0 + rng.uniform(0.0, 0.25) * np.sin(rng.uniform(0.1, 0.4) * t)
    return _Shape(
        kind=kind,
        params=params,
        radius=shape.radius,
        color=shape.color,
        cy=cy,
        cx=cx,
        angle=angle,
        scale=scale,
        stretch=stretch,
        blob=blob,
        texture=_texture(rng, shape.radius),
    )


def _random_free_shape(rng: np.random.Generator, spec: SyntheticVideoSpec, hue: float) -> _Shape:
    """A distractor anywhere in the frame, coloured close to ``hue``."""
    height, width = spec.height, spec.width
    radius = rng.uniform(0.06, 0.14) * min(height, width)
    hue = (hue + rng.uniform(-0.04, 0.04)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0))
    constant = np.ones(spec.num_frames)
    return _Shape(
        kind=_ELLIPSE if rng.uniform() < 0.5 else _RECTANGLE,
        params=np.array([radius, radius * rng.uniform(0.5, 1.0)]) / math.sqrt(2.0),
        radius=radius,
        color=np.array(rgb, dtype=np.float32) * 255.0,
        cy=constant * rng.uniform(0, height),
        cx=constant * rng.uniform(0, width),
        angle=constant * rng.uniform(0.0, 2.0 * math.pi),
        scale=constant,
    )
