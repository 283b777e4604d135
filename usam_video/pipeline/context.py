"""The run context: what a run needs that is expensive to build (its parsed config, the opened
dataset, the SAM 2 model, the USAM heads, the scorer and the policy, and the run's store), built
once per process and run config and handed down to label, refine, the review simulation, head
training and the flows.

Tasks still receive references (the run config's path, a token and a video id), never the
context itself: a task on a process or Dask worker builds the context once there, from the path,
and every later task on that worker finds it under the token. In the process that opened the run
(the CLI, or the flow of a deployment run) every task finds the context the flow built, so a run
parses its config once per process.

Relabelling and refinement use each video's *stored* run config, which may differ from the
current one: :func:`load_context` builds a context for any :class:`RunConfig`, and the model and
heads behind it are shared by content (two configs naming the same model share one).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from usam_video.config import HeadsConfig, ModelConfig, RunConfig, load_run_config
from usam_video.datasets import DatasetReader, open_dataset
from usam_video.engine import BuiltModel, build_model, resolve_device, token_dim_of
from usam_video.errors import UsamVideoError
from usam_video.heads import HeadSet, heads_from_config
from usam_video.scoring import Scorer, ThresholdPolicy
from usam_video.store import PseudoLabelStore

if TYPE_CHECKING:
    import torch

__all__ = [
    "RunContext",
    "cached_heads",
    "cached_model",
    "context_of",
    "load_context",
    "open_run",
]

#: Contexts opened in this process, by token, newest last. A long-lived process (a served
#: deployment runs one flow after another) keeps only the last few: each holds its dataset
#: reader, and the model and heads it shares with the caches below.
_KEEP = 8
_OPEN: OrderedDict[str, RunContext] = OrderedDict()
_OPEN_LOCK = threading.Lock()
#: Held while a worker builds a context it did not find, so that two of its tasks arriving at
#: once build it once.
_BUILD_LOCK = threading.Lock()
_MODEL_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class RunContext:
    """Everything a run needs that is expensive to build, built once per process and run config.

    Attributes:
        run: the parsed run config.
        reader: the run's dataset, opened once.
        heads, scorer, policy: the USAM heads (None: none), the scorer over them and SAM 2's
            own scores, and the policy, checked against the scorer's names (SAM 2 itself,
            :attr:`model`, is built on first use).
        source: the run config file it was parsed from ("" when built from a config object).
        token: the key under which tasks of this process find it (:func:`context_of`).
    """

    run: RunConfig
    reader: DatasetReader
    heads: HeadSet | None
    policy: ThresholdPolicy
    scorer: Scorer
    source: str = ""
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def score_names(self) -> tuple[str, ...]:
        return self.scorer.names

    @cached_property
    def model(self) -> BuiltModel:
        """SAM 2, built (or found in this process's cache) on first use: where a video is
        labelled. The process that only runs a flow whose tasks label elsewhere (a Dask
        cluster) never builds it: a real checkpoint is hundreds of MB of weights."""
        with _MODEL_LOCK:  # two video tasks of a thread pool arriving at once build it once
            return cached_model(self.run.model.model_dump_json())

    @property
    def device(self) -> torch.device:
        """The device SAM 2 runs on (and the heads with it), known without building it."""
        return resolve_device(self.run.model.device)

    @cached_property
    def store(self) -> PseudoLabelStore:
        """The run's store, opened (and created if absent) on first use, then reused by the
        run's own steps (preparing it, the run budget). A regular file, a folder of other files,
        another Zarr group or a read-only place is refused here with one
        :class:`~usam_video.errors.StoreError`. A labelling task opens its own: a store object
        is not shared between threads writing different videos."""
        return PseudoLabelStore.open(self.run.store_path, storage_options=self.run.storage_options)


@lru_cache(maxsize=2)
def cached_model(model_json: str) -> BuiltModel:
    """The SAM 2 model of a :class:`ModelConfig` (as JSON), built once per process."""
    return build_model(ModelConfig.model_validate_json(model_json))


@lru_cache(maxsize=2)
def cached_heads(heads_json: str) -> HeadSet | None:
    """The USAM heads of a :class:`HeadsConfig` (as JSON), loaded once per process."""
    return heads_from_config(HeadsConfig.model_validate_json(heads_json))


@lru_cache(maxsize=2)
def _cached_scorer(heads_json: str, device: str) -> Scorer:
    # The fused heads live on the engine's device.
    return Scorer(cached_heads(heads_json), resolve_device(device))


def load_context(run: RunConfig, *, source: str = "") -> RunContext:
    """Open the dataset, load (or reuse) the heads, check them and the policy against the model's
    config; SAM 2 itself is built on first use (:attr:`RunContext.model`).

    Raises:
        UsamVideoError: heads for another token size, a policy naming scores the scorer lacks,
            or the dataset's own errors.
    """
    reader = open_dataset(run.dataset)
    heads = cached_heads(run.heads.model_dump_json())
    # Read from the sam2 YAML: SAM 2 itself is built where videos are labelled (RunContext.model).
    token_dim = token_dim_of(run.model.sam2_config)
    if heads is not None and heads.token_dim != token_dim:
        raise UsamVideoError(
            f"heads from {heads.source}: expected {token_dim}-d tokens of model "
            f"{run.model.name!r}, got heads for {heads.token_dim}-d tokens."
        )
    scorer = _cached_scorer(run.heads.model_dump_json(), run.model.device)
    policy = ThresholdPolicy(run.policy)
    policy.check(scorer.names, scorer.candidate_names)
    return RunContext(run, reader, heads, policy, scorer, source=source)


def open_run(path: str | Path, *, token: str | None = None) -> RunContext:
    """Parse the run config at ``path`` and build its context, kept in this process under its
    token (``token`` when given: a worker adopting the token of the flow that sent the task).

    Raises:
        InputError: the config cannot be read or is invalid (naming the file).
    """
    source = str(Path(path).resolve())
    context = load_context(load_run_config(Path(source)), source=source)
    if token is not None:
        context = replace(context, token=token)
    with _OPEN_LOCK:
        _OPEN[context.token] = context
        while len(_OPEN) > _KEEP:
            _OPEN.popitem(last=False)
    return context


def context_of(path: str | Path, token: str | None) -> RunContext:
    """The context opened in this process under ``token`` for the config at ``path``; else (a
    fresh worker process, a deployment run, an expired token) it is opened here, once, and kept
    under ``token`` for the next task."""
    source = str(Path(path).resolve())
    context = _registered(token, source)
    if context is not None:
        return context
    with _BUILD_LOCK:
        return _registered(token, source) or open_run(source, token=token)


def _registered(token: str | None, source: str) -> RunContext | None:
    with _OPEN_LOCK:
        context = _OPEN.get(token) if token else None
        if context is None or context.source != source:
            return None
        _OPEN.move_to_end(context.token)
        return context
