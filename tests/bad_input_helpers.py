"""Shared by the bad-input tables (``tests/<package>/test_bad_inputs.py``, issue #18).

Each row of a table damages a copy of something (a dataset, a config, an export, the store),
runs what a user would run (the CLI through typer's runner, or the library where the CLI would
start a Prefect flow), and :func:`check_case` checks three things: the message names what is
wrong (the file, the variable, the video and array, the chunk); nothing escapes as a traceback
(an exception other than the library's own errors fails the row); and a refused operation leaves
the store byte-identical (every file and folder hashed before and after).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from tests.review.helpers import VIDEO, labelled_template
from usam_video.cli import app
from usam_video.errors import UsamVideoError
from usam_video.pipeline import export_queue

__all__ = [
    "MASKS",
    "PYCOCOTOOLS_COPY",
    "SCORES",
    "STATUS",
    "Case",
    "Outcome",
    "Trial",
    "World",
    "bad_input_world",
    "check_case",
    "chunk",
    "cli",
    "damaged",
    "digest",
    "flip_byte",
    "lib",
    "rle_of",
    "store_copy",
]

#: pycocotools' decode passes copy=False to numpy 2 (its own DeprecationWarning per decoded RLE).
PYCOCOTOOLS_COPY = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

runner = CliRunner()


@dataclass(frozen=True)
class Outcome:
    """What a user saw: the exit code (0 ok, non-zero refused) and the text printed or raised."""

    code: int
    text: str


@dataclass(frozen=True)
class Trial:
    """A prepared row: the store that must stay byte-identical (None: nothing to compare, e.g.
    the operation legitimately writes), what to run, and any further check of the result."""

    store: Path | None
    act: Callable[[], Outcome]
    then: Callable[[Outcome], None] | None = None


@dataclass(frozen=True)
class World:
    """Session material, never modified: a labelled store (every propagated frame of ``VIDEO``
    queued for a human), its exports, the generated DAVIS dataset and its config."""

    synth_root: Path
    template: Path
    exports: dict[str, Path]
    dataset_yaml: Path
    small_model_config: object


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[World, Path], Trial]
    code: int  # expected exit code (1: refused by the library or a failed video)
    parts: tuple[str, ...]  # what the message must name


_WORLDS: dict[str, World] = {}


def bad_input_world(tmp_path_factory, synth_root: Path, small_model_config) -> World:
    """Build the :class:`World` once per test session (every table reads it, none changes it)."""
    if "world" not in _WORLDS:
        template = labelled_template(tmp_path_factory, synth_root, small_model_config)
        root = tmp_path_factory.mktemp("bad-inputs")
        source = Path(shutil.copytree(template, root / "exported-from.zarr"))
        exports = {fmt: export_queue(source, fmt, root / fmt).out for fmt in ("cvat", "coco", "png")}
        dataset_yaml = root / "dataset.yaml"
        dataset_yaml.write_text(
            yaml.safe_dump({"name": "synth", "format": "davis", "root": str(synth_root), "videos": [VIDEO]})
        )
        _WORLDS["world"] = World(synth_root, template, exports, dataset_yaml, small_model_config)
    return _WORLDS["world"]


def table_test(cases: list[Case]) -> Callable[..., None]:
    """The test of one package's table, a parametrised case per row (assign it to a module-level
    ``test_...`` name; its ``world`` is the fixture in tests/conftest.py)."""

    @pytest.mark.parametrize("case", cases, ids=[c.id for c in cases])
    def test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical(
        case: Case, world: World, tmp_path: Path
    ) -> None:
        check_case(case, world, tmp_path)

    return test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical


def check_case(case: Case, world: World, tmp_path: Path) -> None:
    """Run one row: the exit code, every named part in the message, no traceback, the store
    byte-identical, then the row's own further check."""
    trial = case.build(world, tmp_path)
    before = digest(trial.store) if trial.store is not None else None
    outcome = trial.act()
    text = " ".join(outcome.text.split())  # rich wraps long lines
    assert outcome.code == case.code, outcome.text
    for part in case.parts:
        assert part in text, f"{part!r} not in: {outcome.text}"
    assert "Traceback" not in outcome.text
    if trial.store is not None:
        assert digest(trial.store) == before, "a refused operation changed the store"
    if trial.then is not None:
        trial.then(outcome)


def digest(path: Path) -> str:
    """Every file's bytes and every folder's name under ``path`` (a refused operation may not even
    create an empty folder)."""
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        h.update(p.read_bytes() if p.is_file() else b"<dir>")
    return h.hexdigest()


def cli(*args: object) -> Outcome:
    """Run the CLI; an exception other than a clean exit is a traceback the user would have seen."""
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback from usam-video {args}") from result.exception
    return Outcome(result.exit_code, result.output)


def lib(call: Callable[[], object]) -> Outcome:
    """Run a library call; only the library's own errors count as a clear refusal."""
    try:
        call()
    except UsamVideoError as exc:
        return Outcome(1, str(exc))
    return Outcome(0, "")


def store_copy(world: World, tmp: Path) -> Path:
    return Path(shutil.copytree(world.template, tmp / "store.zarr"))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def chunk(store: Path, array: str, frame: int = 2) -> Path:
    """An existing chunk file of ``array`` of ``VIDEO`` holding ``frame``: the frame's shard of
    masks, the block of frames ``0-5`` of the small arrays (the video's 6 frames)."""
    block = frame if array == "masks" else 0
    found = sorted((store / "videos" / VIDEO / array / "c" / str(block)).rglob("*"))
    files = [p for p in found if p.is_file()]
    assert files, f"no chunk of {array} on frame {frame}"
    return files[0]


def rle_of(mask: np.ndarray) -> dict[str, object]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def damaged(world: World, tmp: Path, target: Callable[[Path], Path], *command: str) -> Trial:
    """Damage one file of a store copy, then run ``usam-video <command> STORE ...``."""
    store = store_copy(world, tmp)
    path = target(store)
    if path.name == "zarr.json":  # metadata cut short, as by a crash or a full disk
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        flip_byte(path)
    values = {"{dataset}": str(world.dataset_yaml), "{out}": str(tmp / "out"), "{store}": str(store)}
    args = [values.get(a, a) for a in command]
    if str(store) not in args:  # the store is the first argument unless placed explicitly
        args.insert(1, str(store))
    return Trial(store, lambda: cli(*args))


STATUS = lambda s: chunk(s, "status")  # noqa: E731
SCORES = lambda s: chunk(s, "scores")  # noqa: E731
MASKS = lambda s: chunk(s, "masks")  # noqa: E731
