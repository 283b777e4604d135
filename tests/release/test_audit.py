"""The human audit: drawn stratified by score, exported like the queue with only the sampled
frame-objects asked about, read back as truth by the release (IoU with the reviewer's mask),
and never written into the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.release.conftest import tree_hashes
from usam_video.cli import app
from usam_video.errors import InputError
from usam_video.pipeline.release import audit_store, release_store, reviewed_audit
from usam_video.release import MANIFEST, ReleasePolicy, select_video
from usam_video.review import AUDIT_FILE, read_manifest
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, MaskUpdate, Status

POLICY = ReleasePolicy(score="iou_video")
runner = CliRunner()


def _draw(store: Path, out: Path, n: int = 20) -> list[tuple[str, int, int]]:
    audit_store(store, out, n, fmt="png", seed=1, policy=POLICY)
    return [
        (i["video"], i["frame"], i["object"]) for i in json.loads((out / AUDIT_FILE).read_text())["items"]
    ]


def _review(out: Path, item: tuple[str, int, int], mask: np.ndarray) -> None:
    video, frame, object_id = item
    path = out / "masks" / video / f"{object_id:03d}" / f"{frame:05d}.png"
    assert path.is_file()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)


def _selections(store: Path) -> dict:
    s = PseudoLabelStore.open(store, "r")
    return {v: select_video(s.frame_table(v), POLICY, v) for v in s.videos()}


def test_the_audit_asks_about_the_sample_only_and_writes_nothing(store_copy: Path, tmp_path: Path) -> None:
    before = tree_hashes(store_copy)
    items = _draw(store_copy, tmp_path / "audit")
    assert len(items) == len(set(items)) == 20
    manifest = read_manifest(tmp_path / "audit" / MANIFEST)
    asked = {(e.video_id, e.frame, e.object_id) for e in manifest.entries if e.queued}
    assert asked == set(items)  # the other objects of those frames are context
    selections = _selections(store_copy)
    for video, frame, object_id in items:
        sel = selections[video]
        assert sel.candidate[frame, sel.object_ids.index(object_id)]  # never a prompt or a queued one
    assert tree_hashes(store_copy) == before


def test_a_reviewed_audit_gives_the_truth_and_the_release_certifies_on_it(
    store_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "audit"
    items = _draw(store_copy, out)
    wrong = items[0]
    _review(out, wrong, np.zeros((96, 128), bool))  # the reviewer erased it: the object is absent
    before = tree_hashes(store_copy)
    audit = reviewed_audit(PseudoLabelStore.open(store_copy, "r"), out, _selections(store_copy))
    assert audit.source == "review" and len(audit) == 20
    by_key = dict(zip(audit.keys(), audit.iou, strict=True))
    stored = PseudoLabelStore.open(store_copy, "r").read_masks(wrong[0], wrong[1])
    k = _selections(store_copy)[wrong[0]].object_ids.index(wrong[2])
    assert by_key[wrong] == (1.0 if not stored[k].any() else 0.0)
    assert all(iou == 1.0 for key, iou in by_key.items() if key != wrong)  # confirmed unchanged
    outcome = release_store(
        store_copy, "coco", tmp_path / "release", policy=POLICY, max_risk=0.3, delta=0.3, audit_path=out
    )
    assert outcome.result.certificate.audit_size == 20 and outcome.audit.source == "review"
    assert json.loads((tmp_path / "release" / MANIFEST).read_text())["risk"]["audit_size"] == 20
    assert tree_hashes(store_copy) == before


def test_importing_an_audit_is_refused_and_a_stale_audit_too(store_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    items = _draw(store_copy, out)
    before = tree_hashes(store_copy)
    result = runner.invoke(app, ["import", str(store_copy), str(out)])
    assert result.exit_code == 2 and "audit export" in result.output and "release --audit" in result.output
    assert tree_hashes(store_copy) == before
    video, frame, object_id = items[0]
    store = PseudoLabelStore.open(store_copy)
    mask = np.zeros((96, 128), bool)
    mask[10:20, 10:20] = True
    store.replace_masks([MaskUpdate(video, frame, object_id, mask, MaskSource.HUMAN, Status.CORRECTED)])
    with pytest.raises(InputError, match="rewritten since the audit"):
        reviewed_audit(PseudoLabelStore.open(store_copy, "r"), out, _selections(store_copy))


def test_audit_cli_and_audit_without_max_risk(store_copy: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "audit",
            str(store_copy),
            "--n",
            "10",
            "--out",
            str(tmp_path / "a"),
            "--policy",
            str(_policy(tmp_path)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "audit of 10 of" in result.output and (tmp_path / "a" / AUDIT_FILE).is_file()
    bad = runner.invoke(
        app,
        [
            "release",
            str(store_copy),
            "--format",
            "sav",
            "--out",
            str(tmp_path / "r"),
            "--audit",
            str(tmp_path / "a"),
        ],
    )
    assert bad.exit_code == 2 and "expected --max-risk" in bad.output and not (tmp_path / "r").exists()
    too_many = runner.invoke(app, ["audit", str(store_copy), "--n", "100000", "--out", str(tmp_path / "b")])
    assert too_many.exit_code == 2 and "audit size" in too_many.output and not (tmp_path / "b").exists()


def _policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("score: iou_video\n")
    return path
