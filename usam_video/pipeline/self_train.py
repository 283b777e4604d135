"""The semi-supervised experiment as one command (``usam-video self-train CONFIG``): does a
student trained on uncertainty-filtered pseudo-labels beat one trained on all of them?

Stages, each kept under the config's ``out`` folder and skipped when done, so a run that stops
(hours on a CPU) resumes where it stopped:

1. the pool and the test sets, generated (the pool's ground truth is used only by arm (e), the
   audits and the simulated review: the teacher sees its first-frame masks);
2. the teacher labels the pool (``teacher.zarr``);
3. one release per arm (SA-V layout): (b) every pseudo-label, (c) the risk-controlled release
   (a threshold certified at ``max_risk`` on a ground-truth audit), (d) the same after a
   simulated review of ``review_fraction`` of the pool's frame-objects (planned by the review
   policy, corrected from the ground truth and propagated again, ``reviewed.zarr``), (e) the
   ground truth itself;
4. one student per arm, fine-tuned from the same weights with the same recipe and seed; (a) is
   the starting model untouched;
5. J&F of every arm on every test set, and each release's coverage (share of the pool's
   frame-objects it labels) and realised risk (share of its labels with IoU < 0.5 against the
   truth), into ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.config import (
    DatasetConfig,
    GeneratedSet,
    ModelConfig,
    RunConfig,
    SelfTrainConfig,
    TrainModelConfig,
)
from usam_video.datasets import DatasetReader, open_dataset
from usam_video.datasets.synthetic import generated_specs, write_davis_dataset
from usam_video.errors import InputError
from usam_video.output_folder import write_text_atomically
from usam_video.pipeline.label import label_dataset, relabel_videos
from usam_video.pipeline.release import load_policy_file, release_store
from usam_video.pipeline.review_simulation import ReviewSimulation
from usam_video.pipeline.train_model import model_jf, train_model
from usam_video.release import MANIFEST, mask_iou
from usam_video.review.budget import planner_settings
from usam_video.store import PseudoLabelStore

__all__ = ["MARKER", "ArmResult", "self_train"]

#: The file that marks a folder as a self-train run's own (the command refuses any other
#: non-empty folder) and names its config.
MARKER = ".usam-video-self-train.json"


@dataclass(frozen=True)
class ArmResult:
    """One arm: J&F of its students on each test set (keyed ``s<seed>``: the mean over the
    student seeds, and ``jf_by_seed`` each student's, in the order of
    ``StudentConfig.all_seeds``; arm (a), untrained, has one), and its release's coverage and
    realised risk (None for arm (a), which trains on nothing)."""

    arm: str
    jf: dict[str, float]
    coverage: float | None
    risk: float | None
    labels: int | None
    jf_by_seed: dict[str, list[float]]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def self_train(config: SelfTrainConfig, log: Callable[[str], None] = print) -> list[ArmResult]:
    """Run (or resume) the experiment of ``config``; returns a row per arm and writes
    ``results.json`` and ``results.md`` under ``config.out``.

    Raises:
        InputError: ``out`` is a non-empty folder this command did not create, or a stage's
            input is missing (the student's starting weights).
    """
    out = _own_folder(config)
    pool = _generated(out / "pool", "pool", config.pool, log)
    tests = {f"s{g.seed}": _generated(out / f"test-s{g.seed}", "test", g, log) for g in config.tests}
    teacher = _teacher_run(config, pool, out / "teacher.zarr")
    log("teacher: labelling the pool")
    label_dataset(teacher)
    datasets: dict[str, DatasetConfig] = {}
    if "b" in config.arms:
        datasets["b"] = _release(config, teacher.store_path, out / "release-b", certified=False, log=log)
    if "c" in config.arms:
        datasets["c"] = _release(config, teacher.store_path, out / "release-c", certified=True, log=log)
    if "d" in config.arms:
        reviewed = _reviewed_store(config, teacher, out / "reviewed.zarr", log)
        datasets["d"] = _release(config, reviewed, out / "release-d", certified=True, log=log)
    if "e" in config.arms:
        datasets["e"] = pool
    seeds = config.student.all_seeds
    weights = {("a", seeds[0]): config.student.init_weights} if "a" in config.arms else {}
    for seed in seeds:  # one full set of students per seed first: a stopped run has whole seeds
        for arm, dataset in datasets.items():
            weights[arm, seed] = _student(config, arm, dataset, out / "students", log, seed)
    truth = open_dataset(pool)
    results = []
    for arm in config.arms:
        by_seed = {
            name: [
                _jf(config, arm, w, test, out / "eval" / f"{_tag(config, arm, seed)}-{name}.zarr")
                for (a, seed), w in weights.items()
                if a == arm
            ]
            for name, test in tests.items()
        }
        jf = {name: float(np.mean(values)) for name, values in by_seed.items()}
        labels = coverage = risk = None
        if arm in datasets:
            labels, coverage, risk = release_quality(open_dataset(datasets[arm]), truth)
        results.append(ArmResult(arm, jf, coverage, risk, labels, by_seed))
        log(f"arm {arm}: J&F {by_seed}, coverage {coverage}, realised risk {risk}")
    _write_results(config, out, results)
    return results


def _own_folder(config: SelfTrainConfig) -> Path:
    """``config.out``, created with the marker, or reused when the marker names this config."""
    out = Path(config.out)
    marker = out / MARKER
    if out.exists() and any(out.iterdir()) and not marker.is_file():
        raise InputError(
            f"{out}: expected a new or empty folder, or one an earlier self-train run of "
            f"{config.name!r} left (with {MARKER}); found other files."
        )
    if marker.is_file():
        found = json.loads(marker.read_text()).get("name")
        if found != config.name:
            raise InputError(f"{out}: expected the self-train run {config.name!r}, found {found!r}.")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomically(marker, json.dumps({"name": config.name}) + "\n")
    return out


def _generated(root: Path, purpose: str, spec: GeneratedSet, log: Callable[[str], None]) -> DatasetConfig:
    """A generated DAVIS-layout set (written once: its split file marks it done)."""
    split = f"{purpose}-s{spec.seed}"
    if not (root / "ImageSets" / "2017" / f"{split}.txt").is_file():
        log(f"generating {root} ({spec.count} videos x {spec.frames} frames, seed {spec.seed})")
        write_davis_dataset(
            root, generated_specs(purpose, spec.count, num_frames=spec.frames, seed=spec.seed), split=split
        )
    return DatasetConfig(name=split, format="davis", root=root, split=split, resolution="480p")


def _teacher_run(config: SelfTrainConfig, pool: DatasetConfig, store: Path) -> RunConfig:
    t = config.teacher
    return RunConfig(
        name=f"{config.name}-teacher",
        dataset=pool,
        model=t.model,
        heads=t.heads,
        policy=t.policy,
        store=str(store),
    )


def _release(
    config: SelfTrainConfig, store: str | Path, out: Path, *, certified: bool, log: Callable[[str], None]
) -> DatasetConfig:
    """The SA-V-layout release of ``store`` (written once: its manifest marks it done), every
    pseudo-label or the threshold certified at ``config.max_risk``."""
    if not (out / MANIFEST).is_file():
        log(f"releasing {out.name}")
        release_store(
            store,
            "sav",
            out,
            policy=load_policy_file(config.release_policy),
            max_risk=config.max_risk if certified else None,
            delta=config.delta,
            audit_size=config.audit_size if certified else None,
        )
    return DatasetConfig(name=out.name, format="sav", layout="release", root=out)


def _reviewed_store(
    config: SelfTrainConfig, teacher: RunConfig, store: Path, log: Callable[[str], None]
) -> Path:
    """A copy of the teacher's store after a simulated review (``reviewed.json`` marks it done):
    the review policy's planner picks ``review_fraction`` of the candidates by its priority
    score, the ground truth replaces their masks, and the touched videos are propagated again
    with the corrections as conditioning frames, as an import does."""
    done = store.parent / "reviewed.json"
    if done.is_file():
        return store
    shutil.rmtree(store, ignore_errors=True)  # an interrupted review: start it again
    shutil.copytree(teacher.store_path, store)
    assert config.review_policy is not None and config.review_policy.human_budget is not None
    budget = config.review_policy.human_budget
    run = teacher.model_copy(update={"store": str(store)})
    simulation = ReviewSimulation.open(run)
    count = max(1, round(config.review_fraction * simulation.candidates))
    picks = simulation.plan(budget.priority, planner_settings(budget.plan), count)
    log(f"review: {len(picks)} corrections of {simulation.candidates} candidates")
    corrections = [
        update for p in picks for update in simulation.corrections(p.video_id, [(p.frame_index, p.object_id)])
    ]
    PseudoLabelStore.open(store).replace_masks(corrections)
    relabel_videos(store, sorted({p.video_id for p in picks}))
    write_text_atomically(done, json.dumps({"corrections": len(picks)}) + "\n")
    return store


def _tag(config: SelfTrainConfig, arm: str, seed: int) -> str:
    """``<arm>`` for the recipe's own seed (the files of a one-seed run), else ``<arm>-seed<k>``."""
    return arm if seed == config.student.recipe.seed else f"{arm}-seed{seed}"


def _student(
    config: SelfTrainConfig,
    arm: str,
    dataset: DatasetConfig,
    folder: Path,
    log: Callable[[str], None],
    seed: int,
) -> Path:
    """Arm ``arm``'s student of recipe seed ``seed``, fine-tuned on ``dataset`` (resumed from its
    state when stopped)."""
    s = config.student
    tag = _tag(config, arm, seed)
    weights = folder / f"student-{tag}.pt"
    if not weights.is_file():
        log(f"student {tag}: fine-tuning on {dataset.name}")
        train_model(
            TrainModelConfig(
                name=f"student_{tag.replace('-', '_')}",
                sam2_config=s.sam2_config,
                init_weights=s.init_weights,
                recipe=s.recipe.model_copy(update={"seed": seed}),
                dataset=dataset,
                state=folder / f"student-{tag}.state.pt",
                weights=weights,
                threads=s.threads,
            ),
            log=log,
        )
    return weights


def _jf(config: SelfTrainConfig, arm: str, weights: Path, test: DatasetConfig, store: Path) -> float:
    model = ModelConfig(name=f"arm_{arm}", sam2_config=config.student.sam2_config, checkpoint=weights)
    return model_jf(model, test, store=store)


def release_quality(release: DatasetReader, truth: DatasetReader) -> tuple[int, float, float]:
    """What a release labels, against the truth: ``(labels, coverage, realised risk)``: its known
    frame-objects, their share of the truth's frame-objects, and the share of them whose label
    has IoU < 0.5 with the truth (an absent label of a visible object included)."""
    labels = bad = total = 0
    for video_id in truth.list_videos():
        objects = {p.object_id for p in truth.prompts(video_id)}
        released = set(release.list_videos())
        for t in truth.annotated_frames(video_id):
            gt = truth.ground_truth(video_id, t)
            assert gt is not None
            total += len(objects)
            if video_id not in released:
                continue
            ann = release.ground_truth(video_id, t)
            if ann is None:
                continue
            for obj in release.known_objects(video_id, ann) & objects:
                labels += 1
                bad += mask_iou(ann.mask_of(obj), gt.mask_of(obj), gt.void) < 0.5
    if total == 0:
        raise InputError(
            f"dataset {truth.name!r}: expected annotated frames to measure a release on, found none."
        )
    return labels, labels / total, (bad / labels if labels else float("nan"))


def _write_results(config: SelfTrainConfig, out: Path, results: list[ArmResult]) -> None:
    payload = {
        "name": config.name,
        "config": config.model_dump(mode="json"),
        "arms": [r.as_dict() for r in results],
    }
    write_text_atomically(out / "results.json", json.dumps(payload, indent=2, default=str) + "\n")
    seeds = [f"s{g.seed}" for g in config.tests]
    lines = [
        f"# self-train {config.name}",
        "",
        "| arm | " + " | ".join(f"J&F {s}" for s in seeds) + " | labels | coverage | realised risk |",
        "|---|" + "---|" * (len(seeds) + 3),
    ]
    for r in results:
        jf = " | ".join(_mean_and_range(r.jf_by_seed[s]) for s in seeds)
        quality = (
            "- | - | -"
            if r.coverage is None
            else f"{r.labels} | {r.coverage:.3f} | {'-' if np.isnan(r.risk) else f'{r.risk:.3f}'}"
        )
        lines.append(f"| {r.arm} | {jf} | {quality} |")
    lines += _paired_lines(config, results, seeds)
    write_text_atomically(out / "results.md", "\n".join(lines) + "\n")


def _mean_and_range(values: list[float]) -> str:
    """``mean`` of one value, ``mean (min-max)`` of several."""
    mean = float(np.mean(values))
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"


def _paired_lines(config: SelfTrainConfig, results: list[ArmResult], tests: list[str]) -> list[str]:
    """The issue's comparisons, paired by student seed (each seed's students see the same clips
    and prompts): c - b and d - b per test set, as the mean over seeds and each seed's value."""
    by_arm = {r.arm: r for r in results}
    lines = ["", f"Student seeds: {config.student.all_seeds} (J&F: mean (min-max) over them).", ""]
    for arm, base in (("c", "b"), ("d", "b"), ("e", "b")):
        if arm not in by_arm or base not in by_arm:
            continue
        for t in tests:
            deltas = np.subtract(by_arm[arm].jf_by_seed[t], by_arm[base].jf_by_seed[t])
            per_seed = ", ".join(f"{d:+.3f}" for d in deltas)
            lines.append(f"- {arm} - {base} on {t}: {float(deltas.mean()):+.3f} (per seed: {per_seed})")
    return lines
