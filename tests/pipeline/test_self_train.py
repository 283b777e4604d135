"""The semi-supervised experiment as one command (issue #34): every arm runs end to end on a
tiny pool, the results say what each release holds, a rerun resumes (nothing is trained
again), and the command never writes into a folder it did not create."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CONFIGS
from usam_video.config import load_self_train_config
from usam_video.errors import InputError
from usam_video.pipeline.self_train import self_train


@pytest.fixture()
def config(tmp_path: Path, monkeypatch):
    smoke = load_self_train_config(CONFIGS / "self-train" / "smoke.yaml")
    return smoke.model_copy(
        update={
            "out": tmp_path / "run",
            "pool": smoke.pool.model_copy(update={"count": 2, "frames": 6}),
            "tests": [smoke.tests[0].model_copy(update={"count": 1, "frames": 6})],
            "student": smoke.student.model_copy(
                update={
                    "recipe": smoke.student.recipe.model_copy(update={"steps": 1, "clip_frames": 3}),
                    "seeds": [1],  # a second student per arm, paired with the first by seed
                }
            ),
        }
    )


def test_every_arm_runs_and_a_rerun_resumes(config) -> None:
    results = self_train(config, log=lambda _: None)
    assert [r.arm for r in results] == ["a", "b", "c", "d", "e"]
    by_arm = {r.arm: r for r in results}
    assert by_arm["a"].coverage is None and set(by_arm["a"].jf) == {"s61"}
    assert by_arm["e"].coverage == 1.0 and by_arm["e"].risk == 0.0  # the truth, against itself
    assert by_arm["b"].coverage == 1.0  # the teacher accepts every frame-object
    # the certified release holds no more, and no worse, than every pseudo-label
    assert by_arm["c"].labels <= by_arm["b"].labels and by_arm["c"].risk <= by_arm["b"].risk
    saved = json.loads((config.out / "results.json").read_text())
    assert [a["arm"] for a in saved["arms"]] == ["a", "b", "c", "d", "e"]
    assert "| c |" in (config.out / "results.md").read_text()
    # Every arm trained once per seed (the recipe's own seed keeps the one-seed file names); its
    # J&F is their mean, and the report pairs the arms by seed.
    students = sorted(p for p in (config.out / "students").glob("student-*.pt") if ".state" not in p.name)
    assert [p.name for p in students] == sorted(
        [f"student-{a}.pt" for a in "bcde"] + [f"student-{a}-seed1.pt" for a in "bcde"]
    )
    assert len(by_arm["a"].jf_by_seed["s61"]) == 1 and len(by_arm["c"].jf_by_seed["s61"]) == 2
    assert by_arm["c"].jf["s61"] == pytest.approx(sum(by_arm["c"].jf_by_seed["s61"]) / 2)
    report = (config.out / "results.md").read_text()
    assert "Student seeds: [0, 1]" in report and "- c - b on s61:" in report
    stamps = {p: p.stat().st_mtime_ns for p in students}
    again = self_train(config, log=lambda _: None)
    assert [r.as_dict() for r in again] == [r.as_dict() for r in results]
    assert {p: p.stat().st_mtime_ns for p in students} == stamps  # nothing trained again


def test_a_folder_it_did_not_create_is_refused(config) -> None:
    config.out.mkdir()
    (config.out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="expected a new or empty folder"):
        self_train(config, log=lambda _: None)
    assert sorted(p.name for p in config.out.iterdir()) == ["notes.txt"]
