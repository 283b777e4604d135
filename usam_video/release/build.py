"""Write a release: a training dataset out of a store, with a manifest that proves it.

``write_release`` selects the released frame-objects of every complete video
(:mod:`.policy`), writes the chosen format (:mod:`.formats`), a sidecar table of every
frame-object (``frame_objects.csv``) and ``manifest.json`` (store id and generation, the runs'
fingerprints, heads and pairing, the policy, its threshold and the certified risk, counts, and
the sha256 of every file). It writes into a temporary sibling folder and renames it at the end,
so a killed release leaves nothing half-written under the output's name, and releasing an
unchanged store again gives byte-identical files (sorted JSON, no timestamps, JPEG sources
copied, deterministic encoders).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from usam_video.datasets import FrameSource
from usam_video.errors import InputError, StoreError, VideoNotFoundError
from usam_video.hashing import file_sha256
from usam_video.output_folder import MARKER, atomic_output_folder, check_output_folder
from usam_video.release.formats import ReleaseVideo, check_format, dump_json, make_writer
from usam_video.release.head import RELEASE_SCORE, ReleaseHead
from usam_video.release.policy import ReleasePolicy, VideoSelection, select_video
from usam_video.release.risk import RiskCertificate
from usam_video.score_registry import direction_of, is_known
from usam_video.store import PseudoLabelStore
from usam_video.types import MaskSource, Status

__all__ = [
    "MANIFEST",
    "RELEASE_FORMAT",
    "TABLE",
    "ReleaseResult",
    "check_release_out",
    "parse_splits",
    "plan_splits",
    "releasable_videos",
    "verify_release",
    "write_release",
]

RELEASE_FORMAT = "usam-video-release"
RELEASE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TABLE = "frame_objects.csv"
#: Frame-object counts of a release (and of each of its videos in the manifest).
COUNT_KEYS = ("frame_objects", "released", "absent", "candidates", "released_candidates")
# Frames in flight on the writer pool: bounds memory to a few frames' masks.
_IN_FLIGHT = 8


@dataclass(frozen=True)
class ReleaseResult:
    """What a release wrote.

    Attributes:
        frames: frames written per video (images and annotations).
        counts: frame-objects in all, released, released as absent, candidates (pseudo-labels the
            threshold decided on) and released candidates.
        skipped: video id -> why it is not in the release.
    """

    out: Path
    format: str
    release_number: int
    frames: Mapping[str, int]
    counts: Mapping[str, int]
    skipped: Mapping[str, str]
    certificate: RiskCertificate | None
    threshold: float | None
    splits: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """Share of candidate pseudo-labels released (NaN without candidates)."""
        n = self.counts.get("candidates", 0)
        return self.counts.get("released_candidates", 0) / n if n else math.nan


def parse_splits(specs: Sequence[str]) -> dict[str, float]:
    """``["val=0.1", "test=0.1"]`` -> ``{"val": 0.1, "test": 0.1}``; the rest is ``train``.

    Raises:
        InputError: a spec that is not ``name=fraction``, a fraction outside (0, 1), fractions
            summing to 1 or more, or a repeated name.
    """
    splits: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = math.nan
        if (
            not sep
            or not name.isidentifier()
            or not 0.0 < fraction < 1.0
            or name in splits
            or name == "train"
        ):
            raise InputError(
                f"--split {spec!r}: expected NAME=FRACTION with a new name other than 'train' and a "
                "fraction in (0, 1), e.g. --split val=0.1."
            )
        splits[name] = fraction
    if sum(splits.values()) >= 1.0:
        raise InputError(
            f"--split: expected fractions summing to less than 1 (the rest is train), got {splits}."
        )
    return splits


def plan_splits(video_ids: Sequence[str], fractions: Mapping[str, float], seed: int) -> dict[str, list[str]]:
    """Assign videos to splits: a seeded shuffle of the sorted ids, each named split taking
    ``round(fraction * N)`` of them in name order, ``train`` the rest. Depends only on the ids,
    the fractions and the seed, so a re-release keeps every video in its split."""
    ids = sorted(video_ids)
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    splits: dict[str, list[str]] = {}
    start = 0
    for name in sorted(fractions):
        n = int(round(fractions[name] * len(ids)))
        splits[name] = sorted(order[start : start + n])
        start += n
    splits["train"] = sorted(order[start:])
    return {name: videos for name, videos in splits.items() if videos}


def check_release_out(out: Path, force: bool = False) -> None:
    """Refuse an output that is a file, or a non-empty folder that is not an unchanged earlier
    output of usam-video (:mod:`usam_video.output_folder`'s marker) unless ``force``.

    Raises:
        InputError: naming the folder.
    """
    check_output_folder(Path(out), "release", force)


def releasable_videos(
    store: PseudoLabelStore, video_ids: Sequence[str] | None, require_complete: bool
) -> tuple[list[str], dict[str, str]]:
    """The complete videos to release (all, or ``video_ids``) and the others with why.

    Raises:
        VideoNotFoundError: a requested video is not in the store.
        InputError: no video is complete.
        InputError: ``require_complete`` and some video is incomplete or failed.
    """
    stored = store.videos()
    wanted = list(video_ids) if video_ids else stored
    missing = [v for v in wanted if v not in stored]
    if missing:
        raise VideoNotFoundError(f"{store.location}: expected videos {missing} in the store, found {stored}.")
    complete, skipped = [], {}
    for video_id in wanted:
        if store.is_complete(video_id):
            complete.append(video_id)
            continue
        failure = store.summary(video_id).failure
        skipped[video_id] = (
            f"failed: {failure}" if failure else "incomplete (interrupted); rerun it to release it"
        )
    if not complete:
        raise InputError(
            f"{store.location}: expected at least one complete video to release, got none"
            + (f" ({'; '.join(f'{v}: {w}' for v, w in skipped.items())})" if skipped else "")
            + ". Run the labelling first."
        )
    if skipped and require_complete:
        raise InputError(
            f"{store.location}: expected every video complete (--require-complete), got "
            + "; ".join(f"{v}: {why}" for v, why in skipped.items())
            + ". Rerun them, or release without --require-complete."
        )
    return complete, skipped


def _verify(store: PseudoLabelStore, video_ids: Sequence[str]) -> None:
    # Every chunk but the masks': the release reads each mask it writes through zarr, whose
    # CRC-32C check fails the release before anything is published (and a mask that is not
    # released is not read); reading them here too cost a third of a release's time.
    problems = [p for v in video_ids for p in store.verify(v, metadata_only=("masks",)).problems]
    if problems:
        raise StoreError(
            f"{store.location}: expected an intact store to release, found damage: {'; '.join(problems[:5])}"
            f"{' ...' if len(problems) > 5 else ''}. Run 'usam-video verify {store.location}', restore or "
            "relabel the damaged videos, or release the others with --video."
        )


def _first_tracked(status: np.ndarray) -> np.ndarray:
    """``int64`` ``(O,)``: the first frame each object is tracked on, -1 if never."""
    tracked = (status != Status.NOT_STARTED) & (status != Status.PENDING)
    first = np.argmax(tracked, axis=0).astype(np.int64)
    first[~tracked.any(axis=0)] = -1
    return first


def _table_rows(
    video_id: str,
    split: str,
    table: Any,
    sel: VideoSelection,
    score_names: Sequence[str],
    computed: Mapping[str, np.ndarray] | None = None,
) -> list[list[str]]:
    """One CSV row per frame-object of a video (scores in ``score_names`` order, blank if absent;
    ``computed`` ``{name: float (T, O)}`` are scores computed when read, such as the release head's)."""
    columns = [table.score_names.index(n) if n in table.score_names else -1 for n in score_names]
    computed = computed or {}
    source = table.source if table.source is not None else np.zeros_like(table.status)
    revision = table.revision if table.revision is not None else np.zeros_like(table.status)
    rows = []
    for t in range(table.status.shape[0]):
        for k, object_id in enumerate(sel.object_ids):
            values = [float(table.scores[t, k, c]) if c >= 0 else math.nan for c in columns]
            values += [float(v[t, k]) for v in computed.values()]
            scores = [repr(v) if math.isfinite(v) else "" for v in values]
            rows.append([
                video_id, split, str(t), str(object_id), Status(int(table.status[t, k])).label,
                MaskSource(int(source[t, k])).label, str(int(sel.released[t, k])), str(int(sel.absent[t, k])),
                str(int(revision[t, k])), *scores,
            ])  # fmt: skip
    return rows


def write_release(
    store: PseudoLabelStore,
    fmt: str,
    out: str | Path,
    frame_sources: Callable[[str], FrameSource],
    policy: ReleasePolicy,
    *,
    video_ids: Sequence[str] | None = None,
    splits: Mapping[str, float] | None = None,
    seed: int = 0,
    threshold: float | None = None,
    certificate: RiskCertificate | None = None,
    require_complete: bool = False,
    force: bool = False,
    workers: int = 2,
    head: ReleaseHead | None = None,
) -> ReleaseResult:
    """Write the release of ``store`` as ``fmt`` into the new folder ``out``.

    Args:
        frame_sources: video id -> its frames (the dataset the store was labelled from).
        threshold: the confidence threshold (the policy score's own scale) instead of the
            policy's; ``certificate`` is the audit that chose it (recorded in the manifest).
        splits: ``{name: fraction}`` of videos (the rest is ``train``), assigned by ``seed``.
        workers: threads writing images and annotations beside the reading thread.
        head: the release head computing ``good_release`` (when the policy's score is it).

    Raises:
        InputError: a bad format or output, incomplete videos, a policy score the store lacks.
        StoreError: a damaged video (nothing is written).
    """
    out = Path(out)
    check_format(fmt)
    check_release_out(out, force)
    included, skipped = releasable_videos(store, video_ids, require_complete)
    _verify(store, included)
    split_lists = dict(sorted(plan_splits(included, splits or {}, seed).items()))
    split_of = {v: s for s, vids in split_lists.items() for v in vids}
    tables = {v: store.frame_table(v) for v in included}
    # Select first: a policy score the store lacks fails before anything is written.
    selections = {
        v: select_video(tables[v], policy, f"{store.location}: video {v!r}", threshold, head)
        for v in included
    }
    score_names = list(dict.fromkeys(n for table in tables.values() for n in table.score_names))

    # The release head's score is computed when read; the table carries it beside the stored ones.
    computed_name = [RELEASE_SCORE] if policy.score == RELEASE_SCORE else []
    # Written under a temporary sibling and renamed at the end (never half-written, never into a
    # user's folder); the manifest lists every file but the output marker written after it.
    with atomic_output_folder(out, "release", force) as staging:
        writer = make_writer(fmt, staging)
        videos_meta: dict[str, dict[str, Any]] = {}
        rows: list[list[str]] = []
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="release-writer") as pool:
            for video_id in included:
                summary, table, sel = store.summary(video_id), tables[video_id], selections[video_id]
                with frame_sources(video_id) as frames:
                    video = ReleaseVideo(
                        video_id, split_of[video_id], summary.num_frames, summary.height, summary.width,
                        summary.fps, sel, _first_tracked(table.status), frames,
                    )  # fmt: skip
                    written = _write_video(store, writer, pool, video)
                    videos_meta[video_id] = _video_meta(video, summary, written) | writer.end_video(video)
                computed = {name: sel.confidence for name in computed_name}
                rows += _table_rows(video_id, split_of[video_id], table, sel, score_names, computed)
        writer.finish(split_lists)
        _write_table(staging / TABLE, [*score_names, *computed_name], rows)
        counts = {key: sum(meta[key] for meta in videos_meta.values()) for key in COUNT_KEYS}
        manifest = _manifest(
            store, fmt, policy, threshold, certificate, counts, split_lists, videos_meta, skipped,
            [*score_names, *computed_name], staging, head,
        )  # fmt: skip
        dump_json(staging / MANIFEST, manifest)
    frames_written = {v: int(meta["frames_written"]) for v, meta in videos_meta.items()}
    return ReleaseResult(
        out, fmt, int(manifest["release"]), frames_written, counts, skipped, certificate,
        threshold if threshold is not None else policy.threshold, split_lists,
    )  # fmt: skip


def _write_video(store: PseudoLabelStore, writer: Any, pool: ThreadPoolExecutor, video: ReleaseVideo) -> int:
    """Write the frames ``writer`` wants of one video; returns how many. Masks are read on this
    thread (zarr), images and annotations encoded and written on ``pool``, a few frames ahead."""
    wanted = [int(t) for t in np.flatnonzero(writer.wants(video))]
    pending: list[Future[None]] = []
    try:
        for t, masks in store.iter_masks(video.video_id, wanted):
            pending.append(pool.submit(_write_frame, writer, video, t, masks))
            if len(pending) >= _IN_FLIGHT:
                pending.pop(0).result()
    except StoreError as exc:  # a mask chunk failed its checksum: nothing is published
        raise StoreError(
            f"{store.location}: expected an intact store to release, found damage in the masks of "
            f"video {video.video_id!r}: {exc}"
        ) from exc
    for future in pending:
        future.result()
    return len(wanted)


def _write_frame(writer: Any, video: ReleaseVideo, t: int, masks: np.ndarray) -> None:
    video.write_image(t, writer.image_path(video, t))
    writer.add_frame(video, t, masks)


def _video_meta(video: ReleaseVideo, summary: Any, frames: int) -> dict[str, Any]:
    """What the manifest records of one video, its counts (:data:`COUNT_KEYS`) among them."""
    sel, prov = video.selection, summary.provenance
    return {
        "split": video.split,
        "num_frames": video.num_frames,
        "height": video.height,
        "width": video.width,
        "object_ids": list(sel.object_ids),
        "frames_written": frames,
        "frame_objects": int(sel.released.size),
        "released": int(sel.released.sum()),
        "absent": int(sel.absent.sum()),
        "candidates": int(sel.candidate.sum()),
        "released_candidates": int((sel.candidate & sel.released).sum()),
        "fingerprint": summary.fingerprint,
        "model": prov.get("model_name"),
        "checkpoint_sha256": prov.get("checkpoint_sha256"),
        "heads_sha256": prov.get("heads_sha256"),
        "heads_pairing": prov.get("heads_pairing"),
    }


def _write_table(path: Path, score_names: Sequence[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(["video", "split", "frame", "object", "status", "source", "released", "absent", "revision",
                  *score_names])  # fmt: skip
    out.writerows(rows)
    path.write_text(buffer.getvalue())


def _manifest(
    store: PseudoLabelStore,
    fmt: str,
    policy: ReleasePolicy,
    threshold: float | None,
    certificate: RiskCertificate | None,
    counts: Mapping[str, int],
    splits: Mapping[str, Sequence[str]],
    videos: Mapping[str, Mapping[str, Any]],
    skipped: Mapping[str, str],
    score_names: Sequence[str],
    root: Path,
    head: ReleaseHead | None,
) -> dict[str, Any]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    used = threshold if threshold is not None else policy.threshold
    generation = store.generation  # read once: it reads every video's metadata
    return {
        "format": RELEASE_FORMAT,
        "format_version": RELEASE_FORMAT_VERSION,
        "release": generation,
        "dataset_format": fmt,
        "store": {"id": store.store_id, "generation": generation},
        "runs": {
            key: sorted({str(v[key]) for v in videos.values()})
            for key in ("fingerprint", "model", "checkpoint_sha256", "heads_sha256", "heads_pairing")
        },
        "policy": policy.model_dump(mode="json"),
        "threshold": {
            "value": used,
            "score": policy.score,
            "direction": direction_of(policy.score),
            "chosen_by": "max-risk"
            if certificate is not None
            else ("policy" if used is not None else "none"),
        },
        "risk": certificate.as_dict() if certificate is not None else None,
        "release_head": None
        if head is None
        else {"inputs": list(head.inputs), "heads_sha256": head.heads_sha256, "record": head.record},
        "counts": dict(counts),
        "scores": {n: (direction_of(n) if is_known(n) else "unknown") for n in score_names},
        "splits": {s: list(v) for s, v in splits.items()},
        "videos": {v: dict(m) for v, m in videos.items()},
        "skipped": dict(skipped),
        "files": {p.relative_to(root).as_posix(): file_sha256(p) for p in files},
    }


def verify_release(out: str | Path) -> list[str]:
    """Every difference between a release folder and its manifest: a file missing, changed
    (sha256) or not listed. Empty when the release is intact.

    Raises:
        InputError: ``out`` has no readable manifest of a release.
    """
    out = Path(out)
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{out / MANIFEST}: expected the manifest of a usam-video release, got: {exc}"
        ) from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != RELEASE_FORMAT
        or not isinstance(manifest.get("files"), dict)
    ):
        raise InputError(
            f"{out / MANIFEST}: expected a manifest with format {RELEASE_FORMAT!r} and a 'files' table, got "
            f"{str(manifest)[:80]}."
        )
    listed: dict[str, str] = manifest["files"]
    problems = []
    for rel, digest in sorted(listed.items()):
        path = out / rel
        if not path.is_file():
            problems.append(f"{path}: listed in the manifest, missing")
        elif (found := file_sha256(path)) != digest:
            problems.append(f"{path}: expected sha256 {digest[:12]}..., got {found[:12]}... (changed)")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel not in (MANIFEST, MARKER) and rel not in listed:
            problems.append(f"{path}: not in the manifest (added after the release)")
    return problems
