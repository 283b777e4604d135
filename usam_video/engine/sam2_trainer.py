"""Fine-tune a project model on a release with SAM 2's own trainer (``usam-video train-sam2``).

The pinned sam2 (1.1.0) installs its training code beside ``sam2/`` as the top-level package
``training``: ``training.trainer.Trainer``, ``training.model.sam2.SAM2Train``, the VOS data
pipeline (``vos_raw_dataset``, ``vos_segment_loader``, ``vos_dataset``, ``sam2_datasets``,
``transforms``) and ``training.loss_fns.MultiStepMultiMasksAndIous``. This module runs that code
as sam2 does, with three differences of plumbing, none of training:

* the config is composed with Hydra's ``initialize_config_dir`` over the YAML's own folder
  (sam2's ``train.py`` uses ``initialize_config_module("sam2")``, which sees only sam2's
  packaged configs), and the command fills the keys that depend on its inputs (the release,
  steps, learning rate, the model's architecture, checkpoint and resolution, the output folder;
  see ``configs/training/sam2-trainer/micro-on-release.yaml``);
* it calls ``training.train.single_proc_run``, which is what sam2's ``single_node_runner`` runs
  for one process, without that runner's ``torch.multiprocessing.set_start_method("spawn")``
  (process-wide, and an error on a second call in one process);
* sam2's process-wide side effects are undone afterwards: the gloo process group is destroyed,
  the environment variables it sets (``RANK``, ``MASTER_PORT``, ...) and the root logger it
  replaces (``training.utils.logger.setup_logging``) are restored.

Data: the sav layout of a release through sam2's ``JSONRawDataset``, whose loader drops every
frame with a ``null`` masklet entry (``rm_unannotated``), i.e. every frame on which the release
left some object out. A frame-object that was not released therefore gives no loss, at the cost
of the whole frame: only frames whose every object is released remain
(:class:`ReleaseFrames` counts them with sam2's own loader, and the command prints it). sam2's
``RandomUniformSampler`` then draws ``scratch.num_frames`` consecutive *kept* frames, so a clip
may jump over dropped frames, and a video with fewer kept frames gives no clip at all: such
videos are left out of the file list. (The davis layout, read by ``PNGRawDataset``, holds the
same frames: the release writes only fully released frames there, and loses overlapping pixels
to the palette.)

Steps: sam2's trainer counts epochs, not steps. With one phase per video and batch size 1
(``scratch.phases_per_epoch`` = the number of training videos), a trainer epoch is exactly one
optimiser step, so ``max_epochs`` is the step count and the trainer's own per-epoch
``logs/train_stats.json`` holds every step's loss (sam2 also rewrites ``checkpoint.pt`` at each
epoch: the cost of this mapping).

Where the hand-written trainer (:mod:`usam_video.engine.train_sam2`) duplicates sam2's:

* losses: its ``_focal``/``_dice``/``_true_iou``/``_frame_losses`` (focal x20 + dice on the
  best of the candidates, IoU regression on every candidate, object-score cross-entropy) are
  ``training.loss_fns.MultiStepMultiMasksAndIous`` with ``supervise_all_iou`` and
  ``iou_use_l1_loss: false``; it adds a per-frame-object ``known`` mask (an unreleased
  frame-object gives no loss, the frame's other objects still do), which sam2's loss lacks;
* prompting: ``_points_from_mask``/``_box``/``_point_inputs``/``_correction_prompts`` redo
  ``SAM2Train.prepare_prompt_inputs`` and its iterative correction clicks;
* tracking: ``_ClipTracker``/``_clip_step`` redo ``SAM2Train.forward_tracking``;
* data: :mod:`usam_video.datasets.clips` (consecutive annotated frames, the objects visible on
  the first, at most ``max_objects``) plays the part of ``VOSDataset`` + ``RandomUniformSampler``,
  but keeps a frame with an unreleased object (marked unknown) where sam2 drops it; it has no
  counterpart of ``training.dataset.transforms`` (no flip, affine or colour jitter).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from usam_video.config import load_model_config
from usam_video.engine.locate import resolve_sam2_config
from usam_video.errors import (
    ConfigError,
    DatasetError,
    DatasetNotFoundError,
    InputError,
    ModelBuildError,
    UsamVideoError,
)
from usam_video.hashing import file_sha256
from usam_video.output_folder import atomic_output_folder, check_output_folder

__all__ = [
    "LOSSES_FILE",
    "OUTPUT_KIND",
    "ConstantParamScheduler",
    "CosineParamScheduler",
    "ReleaseFrames",
    "Sam2TrainerResult",
    "compose_trainer_config",
    "count_release_frames",
    "train_with_sam2_trainer",
]

#: The output folder's kind (its marker): a folder of another kind is never written into.
OUTPUT_KIND = "sam2-trainer"
#: The per-step losses and the run's record, in the output folder.
LOSSES_FILE = "losses.json"
#: The release's manifest (written by ``usam-video release``; named here, not imported: the
#: engine does not import the release package).
_MANIFEST = "manifest.json"
# sam2's trainer logs the loss of dataset key "all" in phase "train" under these names.
_LOSS_PREFIX = "Losses/train_all_"
_LOSS_KEY = "Losses/train_all_loss"
# What sam2's single_proc_run sets in os.environ (and setup_distributed_backend adds).
_SAM2_ENV = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING",
)


@dataclass(frozen=True)
class ReleaseFrames:
    """What sam2's ``JSONRawDataset`` keeps of a release's training split.

    Attributes:
        frames: video -> its number of frames in the release.
        kept: video -> the frames sam2's loader keeps (those with no ``null`` entry).
        clip_frames: frames per clip (``scratch.num_frames``): a video with fewer kept frames
            gives no clip and is left out of training.
    """

    frames: dict[str, int]
    kept: dict[str, int]
    clip_frames: int

    @property
    def total(self) -> int:
        return sum(self.frames.values())

    @property
    def kept_total(self) -> int:
        return sum(self.kept.values())

    @property
    def usable(self) -> list[str]:
        """The videos that give a clip, in the loader's (sorted) order."""
        return [v for v, n in self.kept.items() if n >= self.clip_frames]

    @property
    def trained_frames(self) -> int:
        """Kept frames of the usable videos: what training can draw from."""
        return sum(self.kept[v] for v in self.usable)

    def summary(self) -> str:
        """One line for people: frames kept and dropped, videos used."""
        dropped = self.total - self.kept_total
        share = 100.0 * self.kept_total / max(self.total, 1)
        return (
            f"sam2's JSON loader keeps {self.kept_total} of {self.total} frames ({share:.0f} %; "
            f"{dropped} dropped for a null masklet entry); {len(self.usable)} of {len(self.frames)} "
            f"videos have >= {self.clip_frames} kept frames and train ({self.trained_frames} frames)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.total,
            "kept": self.kept_total,
            "dropped": self.total - self.kept_total,
            "clip_frames": self.clip_frames,
            "videos": {v: {"frames": self.frames[v], "kept": self.kept[v]} for v in self.frames},
            "videos_trained": self.usable,
            "frames_trained": self.trained_frames,
        }


@dataclass(frozen=True)
class Sam2TrainerResult:
    """One run of sam2's trainer.

    Attributes:
        losses: the trainer's core loss of each step (``float``, one per step, in order).
        components: each loss term of each step (``loss_mask``, ``loss_dice``, ...).
        seconds: wall time of the trainer (building it included).
    """

    out: Path
    checkpoint: Path
    losses: list[float]
    components: dict[str, list[float]]
    seconds: float
    frames: ReleaseFrames
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds_per_step(self) -> float:
        """Wall time per step, the trainer's setup (model, checkpoint, data) spread over them."""
        return self.seconds / max(len(self.losses), 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "checkpoint": str(self.checkpoint),
            "steps": len(self.losses),
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss": self.losses[-1] if self.losses else None,
            "seconds": self.seconds,
            "seconds_per_step": self.seconds_per_step,
            "frames": self.frames.as_dict(),
        }


class CosineParamScheduler:
    """fvcore's ``CosineParamScheduler``, which sam2's training configs name: the value at
    ``where`` (the fraction of training done, 0..1) falls from ``start_value`` to ``end_value``
    on half a cosine. fvcore is a dev-only extra of sam2 that the lock lacks; sam2's
    ``training.optimizer.Optimizer`` calls a scheduler as ``scheduler(where)``, nothing more."""

    def __init__(self, start_value: float, end_value: float) -> None:
        self.start_value, self.end_value = float(start_value), float(end_value)

    def __call__(self, where: float) -> float:
        return self.end_value + 0.5 * (self.start_value - self.end_value) * (1 + math.cos(math.pi * where))


class ConstantParamScheduler:
    """fvcore's ``ConstantParamScheduler`` (see :class:`CosineParamScheduler`): ``value`` always."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, where: float) -> float:
        return self.value


def _register_sam2_resolvers() -> None:
    """sam2's OmegaConf resolvers (``times``, ``divide``, ...), once per process."""
    from training.utils.train_utils import register_omegaconf_resolvers

    if not OmegaConf.has_resolver("times"):
        register_omegaconf_resolvers()


def _model_node(model_config: Path, config_path: Path) -> tuple[DictConfig, Path | None]:
    """The ``model`` node of a project model config's sam2 YAML, and its checkpoint."""
    model = load_model_config(model_config)
    sam2_yaml = resolve_sam2_config(model.sam2_config)
    try:
        node = OmegaConf.load(sam2_yaml).get("model")
    except (OSError, OmegaConfBaseException) as exc:
        raise ModelBuildError(f"{sam2_yaml}: expected a sam2 model config, got: {exc}") from exc
    if not isinstance(node, DictConfig):
        raise ModelBuildError(
            f"{sam2_yaml}: expected a top-level 'model' entry (named by {config_path}), found none."
        )
    return node, (None if model.random_init else model.checkpoint)


def compose_trainer_config(
    config_path: str | Path,
    release: str | Path,
    *,
    steps: int | None = None,
    lr: float | None = None,
    overrides: Sequence[str] = (),
) -> DictConfig:
    """Compose a sam2 trainer config (``configs/training/sam2-trainer/*.yaml``) and fill the
    keys the command owns: ``dataset.root``, ``scratch.steps``, ``scratch.base_lr``,
    ``scratch.resolution`` (the model's ``image_size``), ``trainer.model`` (the architecture of
    ``model_config``, with ``_target_`` SAM2Train, under the YAML's training keys) and the
    initial checkpoint (``model_config``'s, unless the YAML or an override names one).
    ``launcher.experiment_log_dir`` and ``scratch.phases_per_epoch`` are set when it runs.

    Raises:
        ConfigError: a missing or malformed YAML, a bad override, steps < 1 or lr <= 0.
        ModelBuildError: ``model_config`` names no usable sam2 model config.
    """
    config_path = Path(config_path).resolve()
    if not config_path.is_file() or config_path.suffix != ".yaml":
        raise ConfigError(f"{config_path}: expected a sam2 trainer config (a .yaml file), found none.")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps: expected at least 1 step, got {steps}.")
    if lr is not None and not lr > 0:
        raise ConfigError(f"--lr: expected a positive learning rate, got {lr}.")
    _register_sam2_resolvers()
    # Importing sam2 initialises Hydra globally (its own configs): set that aside while composing.
    saved = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_path.parent), version_base="1.2"):
            cfg = compose(config_name=config_path.stem, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"{config_path}: could not compose it with {list(overrides)}: {exc}") from exc
    finally:
        restore_gh_from_backup(saved)
    missing = [k for k in ("model_config", "scratch", "dataset", "trainer", "launcher") if k not in cfg]
    if missing:
        raise ConfigError(f"{config_path}: expected a sam2 trainer config, missing {missing}.")
    arch, checkpoint = _model_node(config_path.parent / str(cfg.model_config), config_path)
    OmegaConf.set_struct(cfg, False)
    try:
        model = OmegaConf.merge(arch, cfg.trainer.model)
        fills: dict[str, Any] = {
            "dataset.root": str(Path(release).resolve()),
            "scratch.resolution": int(arch.image_size),
            "trainer.model": model,
        }
        if steps is not None:
            fills["scratch.steps"] = steps
        if lr is not None:
            fills["scratch.base_lr"] = lr
        init_key = "trainer.checkpoint.model_weight_initializer.state_dict.checkpoint_path"
        if OmegaConf.select(cfg, init_key) is None:
            if checkpoint is not None:
                fills[init_key] = str(Path(checkpoint).resolve())
            else:  # random_init: the model's own initial weights
                fills["trainer.checkpoint.model_weight_initializer"] = None
        for key, value in fills.items():
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(
            f"{config_path}: expected sam2's trainer layout (trainer.model, scratch, ...): {exc}"
        ) from exc
    return cfg


def _read_manifest(release: Path) -> dict[str, Any]:
    """The manifest of a sav-layout release.

    Raises:
        DatasetNotFoundError: no folder there.
        DatasetError: no manifest, not a release, or not in the sav layout.
    """
    if not release.is_dir():
        raise DatasetNotFoundError(
            f"{release}: expected a release folder (usam-video release STORE --format sav --out DIR), "
            "found nothing."
        )
    path = release / _MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        found = sorted(p.name for p in release.iterdir())[:5]
        raise DatasetError(
            f"{release}: expected a usam-video release (with {_MANIFEST}), found "
            f"{found or 'an empty folder'}. Write one with `usam-video release STORE --format sav --out DIR`."
        ) from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: expected the JSON manifest of a release, got: {exc}") from exc
    if not isinstance(manifest, dict) or "dataset_format" not in manifest:
        raise DatasetError(
            f"{path}: expected the manifest of a usam-video release, got {str(manifest)[:80]}."
        )
    if manifest["dataset_format"] != "sav":
        raise DatasetError(
            f"{path}: expected a release in the sav layout (sam2's JSONRawDataset reads it), got "
            f"{manifest['dataset_format']!r}. Release the store again with --format sav."
        )
    return manifest


def count_release_frames(cfg: DictConfig) -> ReleaseFrames:
    """Count, with sam2's own ``JSONRawDataset``, the frames it keeps of the split listed in
    ``dataset.split_txt`` of the release at ``dataset.root``.

    Raises:
        DatasetError: a missing split list or annotation file, or no video long enough to clip.
    """
    from training.dataset.vos_raw_dataset import JSONRawDataset

    split = Path(str(cfg.dataset.split_txt))
    if not split.is_file():
        raise DatasetError(f"{split}: expected the release's list of training videos, found nothing.")
    dataset = JSONRawDataset(
        str(cfg.dataset.img_folder), str(cfg.dataset.gt_folder), file_list_txt=str(split)
    )
    frames, kept = {}, {}
    for index, name in enumerate(dataset.video_names):
        try:
            video, loader = dataset.get_video(index)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(
                f"{cfg.dataset.gt_folder}: expected the annotations and frames of video {name!r}, got: {exc}"
            ) from exc
        frames[name], kept[name] = len(loader.frame_annots), len(video.frames)
    counted = ReleaseFrames(frames, kept, int(cfg.scratch.num_frames))
    if not counted.usable:
        raise DatasetError(
            f"{cfg.dataset.root}: expected a video with at least {counted.clip_frames} frames whose every "
            f"object is released (sam2's JSON loader drops the others), got none ({counted.summary()})."
        )
    return counted


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _no_gpu_memory(meter: Any, n: int = 1, reset_peak_usage: bool = True) -> None:
    """sam2's ``MemMeter.update`` on a machine without CUDA: 0 GB, nothing reset."""
    meter.val = 0
    meter.count += n
    meter.avg = 0.0


@contextlib.contextmanager
def _sam2_process_state() -> Iterator[int]:
    """Yield a free port for sam2's one-process gloo group; afterwards destroy the group and put
    back the environment variables and the root logger that sam2 changes."""
    import torch
    import torch.distributed as dist
    from training.utils.train_utils import MemMeter

    if dist.is_available() and dist.is_initialized():
        raise InputError(
            "train-sam2: expected no torch.distributed process group in this process, found one."
        )
    env = {name: os.environ.get(name) for name in _SAM2_ENV}
    root, root_handlers = logging.root, list(logging.root.handlers)
    meter_update = MemMeter.update
    if not torch.cuda.is_available():
        # sam2's trainer measures GPU memory after every step, whatever its accelerator, and
        # torch.cuda.reset_peak_memory_stats raises where no GPU is present: measure nothing.
        MemMeter.update = _no_gpu_memory  # type: ignore[method-assign]
    try:
        yield _free_port()
    finally:
        MemMeter.update = meter_update  # type: ignore[method-assign]
        sam2_root = logging.root  # sam2's setup_logging makes its trainer's logger the root
        for handler in list(sam2_root.handlers):
            handler.flush()  # sam2's log.txt stream is closed only at exit: flush it before sealing
            if sam2_root is not root:
                sam2_root.removeHandler(handler)  # nothing more goes to a sealed log.txt
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        logging.root = root
        root.handlers[:] = root_handlers


def _step_losses(stats: Path, steps: int) -> tuple[list[float], dict[str, list[float]]]:
    """Each step's losses from sam2's ``train_stats.json`` (one JSON line per trainer epoch,
    here one per step)."""
    try:
        rows = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise UsamVideoError(f"{stats}: expected sam2's per-epoch training stats, got: {exc}") from exc
    if len(rows) != steps or any(_LOSS_KEY not in row for row in rows):
        raise UsamVideoError(
            f"{stats}: expected {steps} epochs of one step each with {_LOSS_KEY!r}, got {len(rows)} rows. "
            "Keep scratch.train_batch_size 1 and dataset.multiplier 1 (one phase per video)."
        )
    names = sorted(
        k.removeprefix(_LOSS_PREFIX) for k in rows[0] if k.startswith(_LOSS_PREFIX) and k != _LOSS_KEY
    )
    components = {name: [float(row[_LOSS_PREFIX + name]) for row in rows] for name in names}
    return [float(row[_LOSS_KEY]) for row in rows], components


def _run_trainer(cfg: DictConfig) -> float:
    """Run sam2's trainer in this process; returns its wall time in seconds."""
    import torch
    from hydra.errors import InstantiationException
    from training.train import single_proc_run

    threads, before = cfg.get("threads"), torch.get_num_threads()
    started = time.perf_counter()
    # sam2 logs its progress to stdout; it goes to stderr, so the command's stdout is its result.
    with _sam2_process_state() as port, contextlib.redirect_stdout(sys.stderr):
        try:
            if threads:
                torch.set_num_threads(int(threads))
            single_proc_run(local_rank=0, main_port=port, cfg=cfg, world_size=1)
        except InstantiationException as exc:
            raise ConfigError(f"sam2's trainer could not build a component of the config: {exc}") from exc
        finally:
            torch.set_num_threads(before)
    return time.perf_counter() - started


def _record(
    cfg: DictConfig, release: Path, manifest: dict[str, Any], frames: ReleaseFrames, out: Path
) -> dict[str, Any]:
    """What the run used, for ``losses.json``: the release (its store, release number, policy,
    threshold, risk and manifest sha256), the model, the initial checkpoint and the recipe."""
    init = OmegaConf.select(cfg, "trainer.checkpoint.model_weight_initializer.state_dict.checkpoint_path")
    return {
        "trainer": "sam2 training.trainer.Trainer (accelerator cpu, gloo, 1 process)",
        "release": {
            "path": str(release),
            "manifest_sha256": file_sha256(release / _MANIFEST),
            **{k: manifest.get(k) for k in ("store", "release", "policy", "threshold", "risk")},
        },
        "frames": frames.as_dict(),
        "model_config": str(cfg.model_config),
        "init_checkpoint": init,
        "init_checkpoint_sha256": file_sha256(Path(init)) if init and Path(init).is_file() else None,
        "recipe": OmegaConf.to_container(cfg.scratch, resolve=True),
        "config": "config.yaml",
        "checkpoint": str(out / "checkpoints" / "checkpoint.pt"),
    }


def _write_config_files(cfg: DictConfig, folder: Path, out: Path) -> None:
    """``config.yaml`` (as composed and filled) and ``config_resolved.yaml``, as sam2's
    ``train.py`` writes them, with the output folder's final path."""
    final = cfg.copy()
    OmegaConf.update(final, "launcher.experiment_log_dir", str(out), merge=False)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(final))
    (folder / "config_resolved.yaml").write_text(OmegaConf.to_yaml(final, resolve=True))


def train_with_sam2_trainer(
    config_path: str | Path,
    release: str | Path,
    out: str | Path,
    *,
    steps: int | None = None,
    lr: float | None = None,
    overrides: Sequence[str] = (),
    force: bool = False,
) -> Sam2TrainerResult:
    """Fine-tune the model a sam2 trainer config names on a sav-layout release, with sam2's
    ``Trainer`` on the CPU (one process, gloo), and write ``out``:

    * ``checkpoints/checkpoint.pt``: sam2's checkpoint (``model`` state dict, optimizer, ...),
      loadable by a project model config (``sam2_config`` of the same model);
    * ``losses.json``: each step's loss (and its terms), first and last, seconds per step, the
      frames sam2's loader kept and dropped, and the run's record (:func:`_record`);
    * ``logs/`` (sam2's log.txt, train_stats.json), ``config.yaml``, ``config_resolved.yaml``,
      ``train_videos.txt`` (the videos long enough for a clip).

    ``out`` is written through a temporary sibling and renamed into place; it must be new,
    empty or an earlier output of this command, unless ``force``. sam2's trainer resumes from
    its ``checkpoints/``, but each call starts afresh: a few CPU steps are not worth resuming.

    Raises:
        ConfigError: a bad config, override, step count or learning rate.
        DatasetNotFoundError, DatasetError: ``release`` is not a sav release, or leaves no clip.
        InputError: ``out`` is a user's folder (without ``force``) or a file.
    """
    release, out = Path(release).resolve(), Path(out).resolve()
    manifest = _read_manifest(release)
    cfg = compose_trainer_config(config_path, release, steps=steps, lr=lr, overrides=overrides)
    frames = count_release_frames(cfg)
    check_output_folder(out, OUTPUT_KIND, force)
    # One phase per video and batch size 1: a trainer epoch is one step (see the module docstring).
    OmegaConf.update(cfg, "scratch.phases_per_epoch", len(frames.usable), merge=False)
    num_steps = int(cfg.scratch.steps)
    with atomic_output_folder(out, OUTPUT_KIND, force) as staging:
        OmegaConf.update(cfg, "launcher.experiment_log_dir", str(staging), merge=False)
        (staging / "train_videos.txt").write_text("".join(f"{v}\n" for v in frames.usable))
        seconds = _run_trainer(cfg)
        losses, components = _step_losses(staging / "logs" / "train_stats.json", num_steps)
        _write_config_files(cfg, staging, out)
        record = _record(cfg, release, manifest, frames, out)
        payload = {
            "steps": num_steps,
            "loss": losses,
            "components": components,
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "seconds": seconds,
            "seconds_per_step": seconds / num_steps,
            "record": record,
        }
        (staging / LOSSES_FILE).write_text(json.dumps(payload, indent=1) + "\n")
    return Sam2TrainerResult(
        out=out,
        checkpoint=out / "checkpoints" / "checkpoint.pt",
        losses=losses,
        components=components,
        seconds=seconds,
        frames=frames,
        record=record,
    )
