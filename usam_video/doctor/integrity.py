"""Verify that the installed ``sam2`` package is the exact code usam-video was built against.

The PyPI ``sam2==1.1.0`` wheel is published from a fork; its Python files are expected to be
byte-identical to ``facebookresearch/sam2`` at commit ``2b90b9f5``. The bundled
``sam2_manifest.json`` holds the sha256 of every ``sam2/**/*.py`` file of the upstream repository
at that commit (paths relative to the package root), and :func:`verify_sam2` compares an
installed copy against it.

The package directory is located with :func:`importlib.util.find_spec` and never imported,
because importing ``sam2`` initialises Hydra globally.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usam_video.engine.locate import find_sam2_dir
from usam_video.errors import ModelBuildError
from usam_video.hashing import file_sha256

__all__ = [
    "MANIFEST_PATH",
    "IntegrityReport",
    "find_sam2_dir",
    "load_manifest",
    "verify_sam2",
]

#: The bundled manifest of upstream sha256 hashes.
MANIFEST_PATH: Path = Path(__file__).with_name("sam2_manifest.json")


@dataclass(frozen=True)
class IntegrityReport:
    """Outcome of comparing a ``sam2`` package directory with a manifest.

    Attributes:
        package_dir: The package directory that was checked.
        commit: The upstream commit the manifest was computed from.
        ok: ``True`` when no file is mismatched, missing or extra.
        mismatched: Manifest files present on disk whose sha256 differs (relative POSIX paths).
        missing: Manifest files absent from disk.
        extra: ``*.py`` files on disk that the manifest does not list.
    """

    package_dir: Path
    commit: str
    ok: bool
    mismatched: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    def summary(self) -> str:
        """Return a human-readable report: a header line, then one line per problem file."""
        state = "ok" if self.ok else "MODIFIED"
        lines = [f"sam2 at {self.package_dir} vs upstream commit {self.commit}: {state}"]
        lines += [f"mismatched: {p}" for p in self.mismatched]
        lines += [f"missing: {p}" for p in self.missing]
        lines += [f"extra: {p}" for p in self.extra]
        return "\n".join(lines)


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    """Load a sam2 hash manifest (default: the bundled ``sam2_manifest.json``).

    Args:
        path: Manifest JSON file; ``None`` selects :data:`MANIFEST_PATH`.

    Returns:
        The manifest: ``package``, ``version``, ``upstream``, ``commit`` and ``files``
        (relative path -> sha256 hex).

    Raises:
        ModelBuildError: The file is missing, is not JSON, or lacks ``commit``/``files``.
    """
    path = MANIFEST_PATH if path is None else Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelBuildError(
            f"load_manifest: expected a readable JSON manifest at {path}, got {exc}."
        ) from exc
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("commit"), str)
        or not isinstance(manifest.get("files"), dict)
    ):
        raise ModelBuildError(
            f"load_manifest: expected an object with 'commit' and 'files' in {path}, got something else."
        )
    return manifest


def _python_files(package_dir: Path) -> set[str]:
    return {
        p.relative_to(package_dir).as_posix()
        for p in package_dir.rglob("*.py")
        if "__pycache__" not in p.relative_to(package_dir).parts and p.is_file()
    }


def verify_sam2(package_dir: Path | None = None, manifest: dict[str, Any] | None = None) -> IntegrityReport:
    """Compare the sha256 of every ``*.py`` file of a sam2 package with a manifest.

    Args:
        package_dir: Package directory to check; ``None`` locates the installed ``sam2``.
        manifest: Manifest as returned by :func:`load_manifest`; ``None`` loads the bundled one.

    Returns:
        An :class:`IntegrityReport`; ``__pycache__`` folders are ignored.

    Raises:
        ModelBuildError: ``sam2`` cannot be located, or ``package_dir`` is not a directory.
    """
    package_dir = find_sam2_dir() if package_dir is None else Path(package_dir)
    if not package_dir.is_dir():
        raise ModelBuildError(
            f"verify_sam2: expected a sam2 package directory, got {package_dir}. "
            "Pass the folder that holds sam2's __init__.py."
        )
    manifest = load_manifest() if manifest is None else manifest
    expected: dict[str, str] = manifest["files"]
    present = _python_files(package_dir)

    mismatched = tuple(
        sorted(
            rel
            for rel in expected.keys() & present
            if file_sha256(package_dir / rel) != expected[rel].lower()
        )
    )
    missing = tuple(sorted(expected.keys() - present))
    extra = tuple(sorted(present - expected.keys()))
    return IntegrityReport(
        package_dir=package_dir,
        commit=str(manifest["commit"]),
        ok=not (mismatched or missing or extra),
        mismatched=mismatched,
        missing=missing,
        extra=extra,
    )
