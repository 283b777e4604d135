"""A store's videos ranked for review: the :class:`RunReport` the pages are drawn from, most
uncertain video first, with the store's J&F beside the copy-first-mask baseline's."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from usam_video.config import DatasetConfig
from usam_video.datasets import DatasetReader
from usam_video.errors import InputError, VideoNotFoundError
from usam_video.pipeline.evaluate import JfWithBaseline, jf_with_baseline
from usam_video.pipeline.report.digest import VideoDigest, dataset_of, digest_video
from usam_video.store import FrameTable, PseudoLabelStore

__all__ = ["RunReport", "build_report"]


@dataclass(frozen=True)
class RunReport:
    """The digests of a store's videos, most uncertain first, and what the pages need.

    Attributes:
        store: the store as given (a path or an fsspec URL; pages reopen it).
        videos: one digest per video, most uncertain first (NaN uncertainty last).
        paged: ids of the videos that get a page with images: the ``max_pages`` first.
        dataset: the dataset frames and ground truth are read from (None: each video's own,
            from its provenance).
        jf, jf_baseline: overall J&F of the store and of the copy-first-mask baseline over the
            evaluated videos; None without ground truth (``jf_note`` says why).
        protocol: the J&F protocol (``"davis"``: values in [0, 1]; ``"sav"``: x100).
        opened, tables, reader: the store as opened, the frame tables in memory (a run's) and
            the dataset already open, which the pages use instead of opening and reading again.
    """

    store: str
    videos: tuple[VideoDigest, ...]
    paged: tuple[str, ...]
    dataset: DatasetConfig | None = None
    jf: float | None = None
    jf_baseline: float | None = None
    jf_videos: int = 0
    jf_note: str = ""
    protocol: str = "davis"
    worst: int = 4
    opened: PseudoLabelStore | None = field(default=None, repr=False, compare=False)
    tables: Mapping[str, FrameTable] = field(default_factory=dict, repr=False, compare=False)
    reader: DatasetReader | None = field(default=None, repr=False, compare=False)
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({d.video_id: i for i, d in enumerate(self.videos)})

    def digest(self, video_id: str) -> VideoDigest:
        """The digest of ``video_id``; raises :class:`VideoNotFoundError` if it is not reported."""
        if video_id not in self._index:
            raise VideoNotFoundError(
                f"report of {self.store}: expected one of its {len(self.videos)} videos, got {video_id!r}."
            )
        return self.videos[self._index[video_id]]

    def rank(self, video_id: str) -> int:
        """1 for the most uncertain video."""
        self.digest(video_id)
        return self._index[video_id] + 1


def build_report(
    store_path: str | Path | PseudoLabelStore,
    video_ids: Sequence[str] | None = None,
    *,
    dataset: DatasetConfig | None = None,
    max_pages: int | None = None,
    worst: int = 4,
    ground_truth: bool = True,
    jf: JfWithBaseline | None = None,
    tables: Mapping[str, FrameTable] | None = None,
    plans: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    reader: DatasetReader | None = None,
    digested: Mapping[str, VideoDigest] | None = None,
) -> RunReport:
    """Digest a store's videos and rank them, most uncertain first.

    Args:
        store_path: the store (a path or an fsspec URL), read only.
        video_ids: the videos to report; default every video of the store.
        dataset: where frames and ground truth come from; default each video's own dataset
            (from its provenance; J&F then uses the first video's).
        max_pages: how many of the most uncertain videos get a page with images (None: all).
        worst: worst frames per page.
        ground_truth: evaluate J&F (and the copy-first-mask baseline) when the dataset has
            ground truth.
        jf: the store's J&F beside the baseline's, already measured on these videos
            (:func:`~usam_video.pipeline.evaluate.jf_with_baseline`): shown as given, not
            measured again (``ground_truth`` is then not consulted).
        tables, plans: frame tables and review plan entries of videos already in memory (what
            a run's label loop returned), used instead of reading them back from the store.
        reader: ``dataset`` already open (a run's); only used with ``dataset``.
        digested: digests made where the videos were labelled (a sharded run's workers), used
            as they are: neither their tables nor their summaries are read.

    Raises:
        StoreNotFoundError, VideoNotFoundError: no such store or video.
        InputError: a negative ``max_pages`` or a ``worst`` below 1.
    """
    if max_pages is not None and (isinstance(max_pages, bool) or max_pages < 0):
        raise InputError(f"report: expected max_pages >= 0 or None, got {max_pages!r}.")
    if isinstance(worst, bool) or worst < 1:
        raise InputError(f"report: expected worst >= 1 frames per page, got {worst!r}.")
    store = PseudoLabelStore.opened(store_path)
    tables, plans, given = dict(tables or {}), dict(plans or {}), digested or {}
    reader = reader if dataset is not None else None
    stored = store.videos()
    ids = list(video_ids) if video_ids is not None else stored
    missing = sorted(set(ids) - set(stored))  # sets: a run of 50,000 videos checks each against all
    if missing:
        raise VideoNotFoundError(f"{store.location}: expected videos of the store {stored}, got {missing}.")
    digests = [
        given.get(v) or digest_video(store, v, worst=worst, table=tables.get(v), plan=plans.get(v))
        for v in ids
    ]
    # Most uncertain first; unscored videos (NaN) last, in their given order.
    digests.sort(
        key=lambda d: (math.isnan(d.uncertainty), 0.0 if math.isnan(d.uncertainty) else -d.uncertainty)
    )
    if jf is None:
        jf = _store_jf(store, ids, digests, dataset, ground_truth, reader, tables)
    digests = [
        replace(d, jf=jf.per_video.get(d.video_id), jf_baseline=jf.baseline_per_video.get(d.video_id))
        for d in digests
    ]
    count = len(digests) if max_pages is None else min(max_pages, len(digests))
    return RunReport(
        store=store.location if isinstance(store_path, PseudoLabelStore) else str(store_path),
        videos=tuple(digests),
        paged=tuple(d.video_id for d in digests[:count]),
        dataset=dataset,
        jf=jf.jf,
        jf_baseline=jf.baseline,
        jf_videos=len(jf.per_video),
        jf_note=jf.note,
        protocol=jf.protocol,
        worst=worst,
        opened=store,
        tables=tables,
        reader=reader,
    )


def _store_jf(
    store: PseudoLabelStore,
    ids: Sequence[str],
    digests: Sequence[VideoDigest],
    dataset: DatasetConfig | None,
    ground_truth: bool,
    reader: DatasetReader | None,
    tables: Mapping[str, FrameTable],
) -> JfWithBaseline:
    """The store's J&F beside the baseline's on ``ids``, against ``dataset`` or else the dataset
    the first ranked video was labelled from; the note says why there is none."""
    if not ground_truth:
        return JfWithBaseline(note="J&F not computed (switched off)")
    if not digests:
        return JfWithBaseline()
    try:
        gt_dataset = dataset_of(store, digests[0].video_id, dataset)
    except InputError as exc:
        return JfWithBaseline(note=f"no J&F: {exc}")
    return jf_with_baseline(store, gt_dataset, ids, reader=reader, tables=tables)
