"""Tests of usam_video.doctor.integrity: the installed sam2 must be upstream 2b90b9f byte for byte."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from usam_video.doctor.integrity import (
    MANIFEST_PATH,
    IntegrityReport,
    find_sam2_dir,
    load_manifest,
    verify_sam2,
)
from usam_video.errors import ModelBuildError

COMMIT = "2b90b9f5ceec907a1c18123530e92e794ad901a4"


@pytest.fixture
def sam2_copy(tmp_path: Path) -> Path:
    """A copy of the installed sam2 package tree, safe to modify."""
    dst = tmp_path / "sam2"
    shutil.copytree(find_sam2_dir(), dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_manifest_pins_upstream_commit() -> None:
    manifest = load_manifest()
    assert manifest["commit"] == COMMIT
    assert manifest["package"] == "sam2"
    assert manifest["version"] == "1.1.0"
    assert manifest["upstream"] == "facebookresearch/sam2"
    files = manifest["files"]
    # upstream sam2/**/*.py at 2b90b9f holds exactly 25 Python files
    assert len(files) == 25
    assert {
        "build_sam.py",
        "modeling/sam2_base.py",
        "sam2_video_predictor.py",
    } <= files.keys()
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in files.values())
    assert list(files) == sorted(files)


def test_load_manifest_explicit_path_equals_default() -> None:
    assert load_manifest(MANIFEST_PATH) == load_manifest()


def test_installed_sam2_matches_upstream() -> None:
    report = verify_sam2()
    assert report.ok, report.summary()
    assert report.commit == COMMIT
    assert report.package_dir == find_sam2_dir()
    assert (report.mismatched, report.missing, report.extra) == ((), (), ())


def test_unmodified_copy_is_ok(sam2_copy: Path) -> None:
    (sam2_copy / "__pycache__").mkdir(exist_ok=True)
    (sam2_copy / "__pycache__" / "stray.py").write_text("x = 1\n")
    assert verify_sam2(sam2_copy).ok


def test_modified_file_is_mismatched(sam2_copy: Path) -> None:
    target = sam2_copy / "modeling" / "sam2_base.py"
    with target.open("a", encoding="utf-8") as fh:
        fh.write("# local patch\n")
    report = verify_sam2(sam2_copy)
    assert not report.ok
    assert report.mismatched == ("modeling/sam2_base.py",)
    assert report.missing == () and report.extra == ()
    assert "mismatched: modeling/sam2_base.py" in report.summary()


def test_deleted_file_is_missing(sam2_copy: Path) -> None:
    (sam2_copy / "utils" / "amg.py").unlink()
    report = verify_sam2(sam2_copy)
    assert not report.ok
    assert report.missing == ("utils/amg.py",)
    assert report.mismatched == () and report.extra == ()
    assert "missing: utils/amg.py" in report.summary()


def test_added_file_is_extra(sam2_copy: Path) -> None:
    (sam2_copy / "modeling" / "patch.py").write_text("PATCHED = True\n")
    report = verify_sam2(sam2_copy)
    assert not report.ok
    assert report.extra == ("modeling/patch.py",)
    assert report.mismatched == () and report.missing == ()
    assert report.summary().splitlines()[1:] == ["extra: modeling/patch.py"]


def test_custom_manifest(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("")
    manifest = {
        "commit": "deadbeef",
        "files": {"a.py": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"},
    }
    report = verify_sam2(pkg, manifest)
    assert isinstance(report, IntegrityReport)
    assert report.ok and report.commit == "deadbeef"


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelBuildError):
        verify_sam2(tmp_path / "nope")
    with pytest.raises(ModelBuildError):
        load_manifest(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"files": {}}))
    with pytest.raises(ModelBuildError):
        load_manifest(bad)


def test_verify_does_not_import_sam2() -> None:
    code = (
        "import sys\n"
        "from usam_video.doctor.integrity import verify_sam2\n"
        "assert verify_sam2().ok\n"
        "assert 'sam2' not in sys.modules, 'sam2 was imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
