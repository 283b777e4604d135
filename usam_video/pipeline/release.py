"""Release a store as a training dataset: the function ``usam-video release`` and the release
flow call.

Frames come from the dataset each video was labelled from (its run config in the store). With
``max_risk`` the threshold is chosen on an audit of ground truth (every candidate pseudo-label
on an annotated frame, or a stratified sample of ``audit_size`` of them) by
:func:`usam_video.release.certify_threshold`; without it the policy's own threshold (or none)
applies and the manifest says that no risk was certified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from usam_video.config import DatasetConfig
from usam_video.datasets import DatasetReader, FrameSource, open_dataset
from usam_video.pipeline.label import run_config_of
from usam_video.release import (
    AuditSet,
    ReleasePolicy,
    ReleaseResult,
    certify_threshold,
    check_format,
    check_release_out,
    check_risk_target,
    draw_audit,
    ground_truth_audit,
    load_release_policy,
    releasable_videos,
    select_video,
    write_release,
)
from usam_video.score_registry import direction_of
from usam_video.store import PseudoLabelStore

__all__ = ["ReleaseOutcome", "load_policy_file", "release_store"]


@dataclass(frozen=True)
class ReleaseOutcome:
    """A written release and the audit its threshold was chosen on (None without ``max_risk``)."""

    result: ReleaseResult
    audit: AuditSet | None


def load_policy_file(path: str | Path | None) -> ReleasePolicy:
    """The release policy YAML at ``path``, or the default policy when None.

    Raises:
        ConfigError: naming the file and what is wrong.
    """
    return load_release_policy(Path(path)) if path is not None else ReleasePolicy()


class _Readers:
    """One dataset reader per distinct dataset config of the store's videos."""

    def __init__(self, store: PseudoLabelStore):
        self._store = store
        self._readers: dict[str, DatasetReader] = {}

    def config(self, video_id: str) -> DatasetConfig:
        return run_config_of(self._store, video_id).dataset

    def reader(self, video_id: str) -> DatasetReader:
        config = self.config(video_id)
        key = config.model_dump_json()
        if key not in self._readers:
            self._readers[key] = open_dataset(config)
        return self._readers[key]

    def frames(self, video_id: str) -> FrameSource:
        return self.reader(video_id).frames(video_id)


def release_store(
    store_path: str | Path,
    fmt: str,
    out: str | Path,
    *,
    policy: ReleasePolicy | None = None,
    max_risk: float | None = None,
    delta: float = 0.1,
    audit_size: int | None = None,
    audit_seed: int = 0,
    video_ids: Sequence[str] | None = None,
    splits: dict[str, float] | None = None,
    seed: int = 0,
    require_complete: bool = False,
    force: bool = False,
    workers: int = 2,
) -> ReleaseOutcome:
    """Write the release of the store at ``store_path`` (see :func:`usam_video.release.write_release`).

    Raises:
        StoreNotFoundError: no store there (nothing is created).
        InputError: a bad format, output, risk target or split; an audit with no truth.
        StoreError: a damaged video.
    """
    policy = policy or ReleasePolicy()
    check_format(fmt)
    check_release_out(Path(out), force)
    if max_risk is not None:
        check_risk_target(max_risk, delta)
    store = PseudoLabelStore.open(store_path, mode="r")
    readers = _Readers(store)
    threshold, certificate, audit = None, None, None
    if max_risk is not None:
        included, _ = releasable_videos(store, video_ids, require_complete)
        selections = {
            v: select_video(store.frame_table(v), policy, f"{store.location}: video {v!r}") for v in included
        }
        audit = ground_truth_audit(store, selections, readers.reader)
        if audit_size is not None and len(audit):
            audit = audit.subset(draw_audit(audit, min(audit_size, len(audit)), audit_seed))
        certificate = certify_threshold(audit.confidence, audit.bad(policy.bad_iou), max_risk, delta)
        # The certificate's threshold is on the confidence scale; the policy's is the score's own.
        threshold = (
            certificate.threshold if direction_of(policy.score) == "confidence" else -certificate.threshold
        )
    result = write_release(
        store, fmt, out, readers.frames, policy,
        video_ids=video_ids, splits=splits, seed=seed, threshold=threshold, certificate=certificate,
        require_complete=require_complete, force=force, workers=workers,
    )  # fmt: skip
    return ReleaseOutcome(result, audit)
