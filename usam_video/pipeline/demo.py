"""The demo: the whole curation loop on generated videos, with the project's trained models.

Two steps around the labelling, which the caller runs between them (the CLI starts the
pseudo-label flow and the refinement, which print their own tables; this package never imports
Prefect):

* :func:`prepare_demo` generates videos no model or head was trained on (the "test" seed
  stream) in DAVIS layout, and writes the run and dataset configs that point at them;
* :func:`finish_demo`, once the run is labelled and refined, measures J&F against the ground
  truth beside the copy-first-mask baseline (once, and handed to the review report), draws the
  overlays and review plans, writes the static review report and releases the confident
  pseudo-labels as an SA-V training dataset with a certified risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from usam_video.config import load_dataset_config
from usam_video.datasets.synthetic import generated_specs, write_davis_dataset
from usam_video.errors import EvaluationError
from usam_video.pipeline.evaluate import JfWithBaseline, jf_with_baseline
from usam_video.pipeline.overlay import write_overlay
from usam_video.pipeline.release import release_store
from usam_video.pipeline.report import write_static_report
from usam_video.pipeline.review import write_review_plan
from usam_video.release import ReleaseResult
from usam_video.store import PseudoLabelStore
from usam_video.types import QueueEntry

__all__ = ["DEMO_MAX_RISK", "DemoInputs", "DemoResult", "finish_demo", "prepare_demo"]

#: The risk the demo's release certifies (share of released pseudo-labels below the quality bar).
DEMO_MAX_RISK = 0.1


@dataclass(frozen=True)
class DemoInputs:
    """What the demo writes before labelling.

    Attributes:
        out: the demo's folder (absolute).
        data_root: the generated videos and their ground truth, in DAVIS layout.
        videos: the generated video ids.
        run_config: the run YAML (the trained "micro" model, its heads, the trained policy).
        dataset_config: the dataset YAML of the generated videos.
        store: where the run writes its pseudo-labels.
    """

    out: Path
    data_root: Path
    videos: tuple[str, ...]
    run_config: Path
    dataset_config: Path
    store: Path


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured and wrote after labelling and refinement.

    Attributes:
        jf: J&F of the store beside the copy-first-mask baseline's (both present).
        plan: the queued frame-objects the review planner asks a human to correct.
        plan_images: a review-plan timeline PNG per video.
        overlays: a PNG per video with its masks coloured by predicted IoU (``iou_video``).
        report: the static review report's ``index.html``.
        release: the SA-V training dataset released from the store.
    """

    jf: JfWithBaseline
    plan: tuple[QueueEntry, ...]
    plan_images: tuple[Path, ...]
    overlays: tuple[Path, ...]
    report: Path
    release: ReleaseResult


def prepare_demo(out: Path, videos: int, frames: int, configs: Path) -> DemoInputs:
    """Generate ``videos`` videos of ``frames`` frames under ``out/dataset`` and write
    ``out/demo-run.yaml`` and ``out/demo-dataset.yaml``; ``configs`` is the project's
    ``configs/`` folder (models, policies), beside the package's committed weights.

    Raises:
        UsamVideoError: the videos cannot be written.
    """
    out = out.resolve()
    data_root = out / "dataset"
    # The "test" seed stream: videos no model or head was trained or validated on.
    names = write_davis_dataset(data_root, generated_specs("test", videos, frames), split="test")
    dataset = {"name": "generated-demo", "format": "davis", "root": str(data_root), "videos": names}
    store = out / "demo.zarr"
    run_cfg = {
        "name": "demo",
        "dataset": dataset,
        "model": str(configs / "models" / "micro.yaml"),
        "heads": {
            "directory": str(configs.parent / "usam_video" / "weights" / "heads-micro"),
            "token_dim": 128,
        },
        "policy": str(configs / "policies" / "trained.yaml"),
        "store": str(store),
    }
    out.mkdir(parents=True, exist_ok=True)
    run_path = out / "demo-run.yaml"
    run_path.write_text(yaml.safe_dump(run_cfg, sort_keys=False))
    dataset_path = out / "demo-dataset.yaml"
    dataset_path.write_text(yaml.safe_dump(dataset, sort_keys=False))
    return DemoInputs(out, data_root, tuple(names), run_path, dataset_path, store)


def finish_demo(inputs: DemoInputs) -> DemoResult:
    """Measure, draw, report and release the labelled and refined store of ``inputs``.

    Raises:
        EvaluationError: the store has no J&F against the generated ground truth.
        UsamVideoError: a drawing, the report or the release failed (see their functions).
    """
    config = load_dataset_config(inputs.dataset_config)
    store = PseudoLabelStore.open(inputs.store, mode="r")
    # Measured once, here: the CLI prints it and the report shows it as given.
    jf = jf_with_baseline(inputs.store, config, store.videos())
    if jf.jf is None or jf.baseline is None:
        raise EvaluationError(
            f"{inputs.store}: expected a J&F of the generated videos against their ground truth, "
            f"got none ({jf.note or 'the baseline has none'})."
        )
    out = inputs.out
    overlays = tuple(
        write_overlay(inputs.store, config, name, out / f"overlay-{name}.png", score="iou_video")
        for name in inputs.videos
    )
    plan = tuple(e for e in store.queue() if e.plan)
    plan_images = tuple(
        write_review_plan(inputs.store, name, out / f"plan-{name}.png") for name in inputs.videos
    )
    # The demo owns its output folder: a report from before marker files is replaced too.
    report = write_static_report(inputs.store, out / "report", config, force=True, jf=jf)
    # What a curation run ends in: the released pseudo-labels as a training dataset (sam2's SA-V
    # layout), the threshold certified on the generated videos' ground truth.
    released = release_store(inputs.store, "sav", out / "release-sav", max_risk=DEMO_MAX_RISK, force=True)
    return DemoResult(jf, plan, plan_images, overlays, report, released.result)
