"""The manifest of a heads directory: which features its heads were trained on.

``<dir>/manifest.json`` beside the official layout (``<dir>/<head>/model.pth``)::

    {"format": "usam-video-heads", "version": 1,
     "pairing": "reference" | "aligned",
     "token_dim": 256, "sam2_version": "2.1", "sam2_size": "tiny",
     "heads": {"lost_video": {"inputs": ["prev_iou", ...], "mean": [...], "std": [...]}}}

``pairing`` says which mask token scores decoder candidate ``k`` (tokens 0..3: 0 is the
single-mask output, 1..3 the multimask outputs):

* ``"reference"``: the UncertainSAM reference code. It concatenates the IoU token with
  ``mask_tokens[0:3]`` and sets them beside SAM's three multimask outputs, so multimask output
  ``k`` (1..3) is scored with token ``k - 1``; a single-mask output (``k = 0``) with token 0.
  The published SAM 2.0 and SAM 2.1 head sets were trained so.
* ``"aligned"``: candidate ``k`` with token ``k``. The heads this project trains
  (``usam-video train-heads``) record the chosen candidate's own token.

``heads`` lists only heads with extra inputs (the video heads): the input names (after the two
tokens, in this order), and the mean and std their raw values are normalised with before the
head sees them (``(x - mean) / std``). A head not listed takes the two tokens only.

A directory in the official layout without ``manifest.json`` is the published set: pairing
``reference``, SAM 2.1, size unknown. :class:`usam_video.config.HeadsConfig`'s ``pairing`` and
``sam2_version`` describe such a directory instead (``sam2_version: "2.0"`` for the SAM 2.0 set);
they must agree with a manifest where there is one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from usam_video.errors import HeadsError
from usam_video.score_registry import is_known

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "Pairing",
    "PAIRINGS",
    "HeadInputs",
    "HeadsManifest",
    "read_manifest",
    "write_manifest",
    "token_index",
]

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "usam-video-heads"
MANIFEST_VERSION = 1
Pairing = Literal["reference", "aligned"]
PAIRINGS: tuple[str, ...] = get_args(Pairing)
#: What a directory without a manifest is: the published UncertainSAM set for SAM 2.1.
DEFAULT_PAIRING: Pairing = "reference"
DEFAULT_SAM2_VERSION = "2.1"
UNKNOWN_SIZE = "unknown"

_KEYS = {"format", "version", "pairing", "token_dim", "sam2_version", "sam2_size", "heads"}
_HEAD_KEYS = {"inputs", "mean", "std"}


@dataclass(frozen=True)
class HeadInputs:
    """The extra inputs of one head, after ``concat(iou_token, mask_token)``.

    Attributes:
        inputs: input names (score registry names, e.g. video features), in column order.
        mean, std: per input, the normalisation ``(x - mean) / std`` applied before the head;
            as long as ``inputs``; every ``std`` is positive.
    """

    inputs: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __len__(self) -> int:
        return len(self.inputs)


_NO_INPUTS = HeadInputs()


@dataclass(frozen=True)
class HeadsManifest:
    """What a heads directory's ``manifest.json`` says (or what a directory without one is).

    Attributes:
        pairing: ``"reference"`` or ``"aligned"`` (see the module docstring).
        token_dim: ``D``, the width of SAM's decoder tokens the heads read.
        sam2_version: the SAM 2 release whose tokens the heads were trained on (``"2.0"``, ``"2.1"``).
        sam2_size: that SAM 2's size (``"tiny"``, ``"micro"``...), ``"unknown"`` when not recorded.
        heads: extra inputs per head name; heads not listed have none.
        from_file: the values were read from a manifest (False: the default of the official layout).
    """

    pairing: Pairing
    token_dim: int
    sam2_version: str = DEFAULT_SAM2_VERSION
    sam2_size: str = UNKNOWN_SIZE
    heads: Mapping[str, HeadInputs] = field(default_factory=dict)
    from_file: bool = False

    def inputs_of(self, name: str) -> HeadInputs:
        """The extra inputs of head ``name`` (none when it is not listed)."""
        return self.heads.get(name, _NO_INPUTS)

    def to_json(self) -> dict[str, Any]:
        """The JSON object :func:`write_manifest` writes (heads without inputs are left out)."""
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "pairing": self.pairing,
            "token_dim": self.token_dim,
            "sam2_version": self.sam2_version,
            "sam2_size": self.sam2_size,
            "heads": {
                name: {"inputs": list(h.inputs), "mean": list(h.mean), "std": list(h.std)}
                for name, h in sorted(self.heads.items())
                if h.inputs
            },
        }


def token_index(pairing: str, num_tokens: int) -> tuple[int, ...]:
    """Which mask token scores each decoder candidate ``k`` in ``0..num_tokens-1``.

    ``"aligned"``: ``(0, 1, 2, 3)``; ``"reference"``: ``(0, 0, 1, 2)`` (multimask output ``k``
    with token ``k - 1``, the single-mask output with token 0).

    Raises:
        HeadsError: an unknown pairing.
    """
    if pairing == "aligned":
        return tuple(range(num_tokens))
    if pairing == "reference":
        return tuple(max(k - 1, 0) for k in range(num_tokens))
    raise HeadsError(f"heads pairing: expected one of {list(PAIRINGS)}, got {pairing!r}.")


def _fail(path: Path, what: str) -> HeadsError:
    return HeadsError(
        f"{path}: expected {what}. Fix the file, or delete it to read the directory as the "
        "published UncertainSAM set (pairing reference, SAM 2.1)."
    )


def _numbers(path: Path, where: str, values: object, n: int) -> tuple[float, ...]:
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise _fail(path, f"{where} to be a list of finite numbers, got {values!r}")
    if len(values) != n:
        raise _fail(path, f"{where} to hold {n} values (one per input), got {len(values)}")
    return tuple(float(v) for v in values)


def _head_inputs(path: Path, name: object, raw: object) -> HeadInputs:
    where = f"heads[{name!r}]"
    if not isinstance(raw, dict):
        raise _fail(path, f"{where} to be an object with 'inputs', 'mean' and 'std', got {raw!r}")
    unknown = sorted(set(raw) - _HEAD_KEYS)
    if unknown:
        raise _fail(path, f"{where} keys among {sorted(_HEAD_KEYS)}, got unknown {unknown}")
    inputs = raw.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise _fail(path, f"{where}.inputs to be a list of input names, got {inputs!r}")
    strangers = [i for i in inputs if not is_known(i)]
    if strangers:
        raise _fail(path, f"{where}.inputs to be score or video-feature names, got unknown {strangers}")
    if len(set(inputs)) != len(inputs):
        raise _fail(path, f"{where}.inputs without repeats, got {inputs}")
    mean = _numbers(path, f"{where}.mean", raw.get("mean", []), len(inputs))
    std = _numbers(path, f"{where}.std", raw.get("std", []), len(inputs))
    if any(s <= 0 for s in std):
        raise _fail(path, f"{where}.std to be positive, got {list(std)}")
    return HeadInputs(tuple(inputs), mean, std)


def read_manifest(directory: Path) -> HeadsManifest | None:
    """The manifest of a heads directory, or None when it has no ``manifest.json``.

    Raises:
        HeadsError: the file is not JSON, not this format or version, or a field is wrong (an
            unknown pairing, a non-positive token_dim, mean/std not as long as inputs...); the
            message names the file.
    """
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"a JSON heads manifest, got unreadable content ({exc})") from exc
    if not isinstance(raw, dict):
        raise _fail(path, f"a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _fail(path, f"keys among {sorted(_KEYS)}, got unknown {unknown}")
    if raw.get("format") != MANIFEST_FORMAT:
        raise _fail(path, f"format {MANIFEST_FORMAT!r}, got {raw.get('format')!r}")
    if raw.get("version") != MANIFEST_VERSION:
        raise _fail(path, f"version {MANIFEST_VERSION}, got {raw.get('version')!r}")
    pairing = raw.get("pairing")
    if pairing not in PAIRINGS:
        raise _fail(path, f"pairing one of {list(PAIRINGS)}, got {pairing!r}")
    token_dim = raw.get("token_dim")
    if not isinstance(token_dim, int) or isinstance(token_dim, bool) or token_dim <= 0:
        raise _fail(path, f"token_dim a positive integer, got {token_dim!r}")
    version = raw.get("sam2_version", DEFAULT_SAM2_VERSION)
    size = raw.get("sam2_size", UNKNOWN_SIZE)
    for key, value in (("sam2_version", version), ("sam2_size", size)):
        if not isinstance(value, str) or not value:
            raise _fail(path, f"{key} a non-empty string, got {value!r}")
    heads = raw.get("heads", {})
    if not isinstance(heads, dict):
        raise _fail(path, f"heads to be an object {{name: {{inputs, mean, std}}}}, got {heads!r}")
    return HeadsManifest(
        pairing=pairing,
        token_dim=token_dim,
        sam2_version=version,
        sam2_size=size,
        heads={name: _head_inputs(path, name, spec) for name, spec in heads.items()},
        from_file=True,
    )


def write_manifest(directory: Path, manifest: HeadsManifest) -> Path:
    """Write ``<directory>/manifest.json`` (the directory is created); returns its path."""
    path = Path(directory) / MANIFEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest.to_json(), indent=1) + "\n", encoding="utf-8")
    return path
