"""Release a store as a training dataset: the function ``usam-video release`` and the release
flow call.

Frames come from the dataset each video was labelled from (its run config in the store). With
``max_risk`` the threshold is chosen on an audit of ground truth (every candidate pseudo-label
on an annotated frame, or a stratified sample of ``audit_size`` of them) by
:func:`usam_video.release.certify_threshold`; without it the policy's own threshold (or none)
applies and the manifest says that no risk was certified.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from usam_video.config import DatasetConfig
from usam_video.datasets import DatasetReader, FrameSource, open_dataset
from usam_video.errors import InputError
from usam_video.pipeline.provenance import run_config_of
from usam_video.release import (
    RELEASE_SCORE,
    AuditSet,
    ReleaseHead,
    ReleasePolicy,
    ReleaseResult,
    VideoSelection,
    certify_threshold,
    check_format,
    check_release_out,
    check_risk_target,
    draw_audit,
    ground_truth_audit,
    load_release_head,
    load_release_policy,
    mask_iou,
    releasable_videos,
    release_head_path,
    select_video,
    write_release,
)
from usam_video.review import (
    AUDIT_FILE,
    ExportResult,
    export_review,
    locate_import,
    read_import,
    store_mismatch,
    view_edits,
)
from usam_video.score_registry import direction_of
from usam_video.store import PseudoLabelStore

__all__ = [
    "ReleaseOutcome",
    "audit_store",
    "load_policy_file",
    "release_head_for",
    "release_store",
    "reviewed_audit",
]


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


def release_head_for(
    store: PseudoLabelStore, video_ids: Sequence[str], policy: ReleasePolicy
) -> ReleaseHead | None:
    """The release head computing ``good_release`` for these videos (None for another score):
    ``policy.head``, else ``release_head.json`` beside the heads that labelled them.

    Raises:
        InputError: no head there, or a video labelled with other heads than the head knows.
    """
    if policy.score != RELEASE_SCORE:
        return None
    head: ReleaseHead | None = None
    for video_id in video_ids:
        provenance = store.summary(video_id).provenance
        where = f"{store.location}: video {video_id!r}"
        if head is None:
            path = policy.head or release_head_path(provenance)
            if path is None:
                raise InputError(
                    f"{where}: expected a release head for the score {RELEASE_SCORE!r} beside the heads "
                    f"that labelled it, got heads {provenance.get('heads_source', 'none')!r}. Give 'head:' "
                    "in the release policy, or release by a stored score (a policy with score: iou_video)."
                )
            head = load_release_head(path)
        head.check_heads(str(provenance.get("heads_sha256", "none")), where)
    return head


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
    starts: int = 1,
    audit_path: str | Path | None = None,
) -> ReleaseOutcome:
    """Write the release of the store at ``store_path`` (see :func:`usam_video.release.write_release`).

    With ``max_risk`` the threshold is certified on an audit: the reviewed audit export at
    ``audit_path`` (``usam-video audit``; only its sampled frame-objects count), else the
    dataset's ground truth on every candidate (or a stratified sample of ``audit_size``).

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
    elif audit_path is not None:
        raise InputError(
            f"--audit {audit_path}: expected --max-risk with an audit (the audit certifies its threshold)."
        )
    store = PseudoLabelStore.open(store_path, mode="r")
    readers = _Readers(store)
    threshold, certificate, audit = None, None, None
    included, _ = releasable_videos(store, video_ids, require_complete)
    head = release_head_for(store, included, policy)
    if max_risk is not None:
        selections = _select_all(store, included, policy, head)
        if audit_path is not None:
            audit = reviewed_audit(store, audit_path, selections)
        else:
            audit = ground_truth_audit(store, selections, readers.reader)
            if audit_size is not None and len(audit):
                audit = audit.subset(draw_audit(audit, min(audit_size, len(audit)), audit_seed))
        certificate = certify_threshold(audit.confidence, audit.bad(policy.bad_iou), max_risk, delta, starts)
        # The certificate's threshold is on the confidence scale; the policy's is the score's own.
        threshold = (
            certificate.threshold if direction_of(policy.score) == "confidence" else -certificate.threshold
        )
    result = write_release(
        store, fmt, out, readers.frames, policy,
        video_ids=video_ids, splits=splits, seed=seed, threshold=threshold, certificate=certificate,
        require_complete=require_complete, force=force, workers=workers, head=head,
    )  # fmt: skip
    return ReleaseOutcome(result, audit)


def _select_all(
    store: PseudoLabelStore, video_ids: Sequence[str], policy: ReleasePolicy, head: ReleaseHead | None
) -> dict[str, VideoSelection]:
    return {
        v: select_video(store.frame_table(v), policy, f"{store.location}: video {v!r}", head=head)
        for v in video_ids
    }


def audit_store(
    store_path: str | Path,
    out: str | Path,
    n: int,
    *,
    fmt: str = "png",
    seed: int = 0,
    strata: int = 10,
    policy: ReleasePolicy | None = None,
    video_ids: Sequence[str] | None = None,
    force: bool = False,
) -> tuple[ExportResult, int]:
    """Draw an audit of ``n`` candidate pseudo-labels (stratified by the policy's score, see
    :func:`usam_video.release.draw_audit`) and export their frames for review, like the queue;
    ``audit.json`` beside the manifest records the sample. The reviewer is asked about the sampled
    frame-objects only (the manifest's ``queued``). Returns the export and the pool's size.

    Raises:
        InputError: ``n`` outside 1..pool, a bad format or output folder.
    """
    policy = policy or ReleasePolicy()
    store = PseudoLabelStore.open(store_path, mode="r")
    included, _ = releasable_videos(store, video_ids, False)
    head = release_head_for(store, included, policy)
    pool: list[tuple[str, int, int, float]] = []
    for video_id, sel in _select_all(store, included, policy, head).items():
        for t, k in zip(*np.nonzero(sel.candidate), strict=True):
            pool.append((video_id, int(t), int(sel.object_ids[k]), float(sel.confidence[t, k])))
    picked = [pool[i] for i in draw_audit(pool, n, seed, strata)]
    frames: dict[str, set[int]] = {}
    for video_id, t, _, _ in picked:
        frames.setdefault(video_id, set()).add(t)
    document = {
        "format": "usam-video-audit",
        "store_id": store.store_id,
        "generation": store.generation,
        "policy": policy.model_dump(mode="json"),
        "n": n, "seed": seed, "strata": strata, "pool": len(pool),
        "items": [{"video": v, "frame": t, "object": o, "confidence": c} for v, t, o, c in picked],
    }  # fmt: skip
    readers = _Readers(store)
    result = export_review(
        store, fmt, out, readers.frames, force=force,
        frames={v: sorted(f) for v, f in frames.items()},
        asked={(v, t, o) for v, t, o, _ in picked},
        extra_files={AUDIT_FILE: json.dumps(document, indent=1, sort_keys=True) + "\n"},
    )  # fmt: skip
    return result, len(pool)


def reviewed_audit(
    store: PseudoLabelStore, path: str | Path, selections: dict[str, VideoSelection]
) -> AuditSet:
    """The truth of a reviewed audit export: for each sampled frame-object, the IoU of the stored
    mask with the reviewer's (1 when left unchanged: confirmed). Reads, never writes, the store.

    Raises:
        InputError: not an audit export of this store, a reviewer's file that does not parse, an
            edit in a file the import does not read, or a sampled mask rewritten since the audit.
    """
    folder = Path(path)
    try:
        document = json.loads((folder / AUDIT_FILE).read_text())
        items = [(str(i["video"]), int(i["frame"]), int(i["object"])) for i in document["items"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{folder / AUDIT_FILE}: expected the sample of an audit export ('usam-video audit'), got: {exc}"
        ) from exc
    source = locate_import(folder)
    mismatch = store_mismatch(store, source.manifest)
    problems = ([mismatch] if mismatch else []) + view_edits(source)
    parsed, bad = read_import(source)
    problems += bad
    reviewed = {(p.video_id, p.frame, p.object_id): p.mask for p in parsed}
    exported = {(e.video_id, e.frame, e.object_id): e for e in source.manifest.entries}
    rows: list[tuple[str, int, int, float, float]] = []
    revisions: dict[str, np.ndarray | None] = {}  # each video's table read once, not per item
    for video_id, t, object_id in items:
        sel, entry = selections.get(video_id), exported.get((video_id, t, object_id))
        if sel is None or entry is None or object_id not in sel.object_ids:
            problems.append(
                f"{folder}: audit item {(video_id, t, object_id)} is not in the export or the release."
            )
            continue
        k = sel.object_ids.index(object_id)
        if video_id not in revisions:
            revisions[video_id] = store.frame_table(video_id).revision
        revision = revisions[video_id]
        if revision is not None and int(revision[t, k]) != entry.revision:
            problems.append(
                f"{folder}: audit item {(video_id, t, object_id)} was rewritten since the audit (revision "
                f"{entry.revision} -> {int(revision[t, k])}); draw a new audit."
            )
            continue
        mask = reviewed.get((video_id, t, object_id))
        if mask is None:
            problems.append(
                f"{folder}: expected the reviewer's mask of audit item {(video_id, t, object_id)}, "
                "found none."
            )
            continue
        stored = store.read_masks(video_id, t)[k]
        if mask.shape != stored.shape:
            problems.append(
                f"{folder}: audit item {(video_id, t, object_id)}: expected a {stored.shape} mask, "
                f"got {mask.shape}."
            )
            continue
        rows.append(
            (video_id, t, object_id, mask_iou(stored, mask.astype(bool)), float(sel.confidence[t, k]))
        )
    if problems:
        raise InputError(
            f"{folder}: expected a reviewed audit of this store, got {len(problems)} problems: "
            + "; ".join(problems[:5])
        )
    return AuditSet(
        np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.int64), np.array([r[3] for r in rows], dtype=np.float64),
        np.array([r[4] for r in rows], dtype=np.float64), "review",
    )  # fmt: skip
