"""The label loop's host synchronisations, counted on the CPU (issue #17).

On a GPU every copy to the host waits for the device. The per-frame path copies only through
``usam_video.engine.transfer.copy_to_host``: this test counts those copies per frame, and
watches every thread (sys.setprofile) for any other copy to the host made by usam-video code
(``Tensor.cpu``, ``.numpy``, ``.item``, ``.tolist``, ``np.asarray(tensor)``). sam2's own
synchronisations are bare SAM 2's cost and are not counted here; on a GPU the benchmark
(``python -m usam_video.bench.gpu``) counts them all with ``torch.cuda.set_sync_debug_mode``.
"""

import collections
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import make_run_config
from usam_video.config import PolicyConfig, PolicyRule
from usam_video.engine import PropagationSession, transfer
from usam_video.pipeline import label_video, load_context, video_result
from usam_video.scoring import score_frame
from usam_video.store import PseudoLabelStore
from usam_video.types import ObjectPrompt

_HOST_COPIES = {"cpu", "numpy", "item", "tolist"}


def _swap_policy() -> PolicyConfig:
    """A policy with a task swap, so the session also upsamples every candidate mask."""
    return PolicyConfig(
        name="swap",
        rules=[
            PolicyRule(name="swap", score="task_gap", op=">", threshold=0.0, route="task"),
            PolicyRule(name="low_sam_iou", score="sam_iou", op="<", threshold=0.495, route="human"),
        ],
    )


class _Watch:
    """Counts copy_to_host calls per thread and every other host copy made by usam_video code."""

    def __init__(self, device_scorer: object) -> None:
        self.device_scorer = device_scorer
        self.copies = 0
        self.others: collections.Counter[tuple[str, str, int, str]] = collections.Counter()
        self._lock = threading.Lock()

    def profile(self, frame, event, arg) -> None:
        if event == "c_call":
            owner = getattr(arg, "__self__", None)
            if isinstance(owner, torch.Tensor) and getattr(arg, "__name__", "") in _HOST_COPIES:
                self._note(frame, arg.__name__)
        elif event == "call" and frame.f_code.co_name == "__array__" and "torch" in frame.f_code.co_filename:
            self._note(frame.f_back, "__array__")

    def _note(self, frame, what: str) -> None:
        module = frame.f_globals.get("__name__", "")
        owner = frame.f_locals.get("self")
        if module == "usam_video.scoring.scores" and owner is not None and owner is not self.device_scorer:
            return  # the heads' CPU copy rescoring a task swap on the host: no device involved
        if module.startswith("usam_video") and module != "usam_video.engine.transfer":
            with self._lock:
                self.others[(module, frame.f_code.co_name, frame.f_lineno, what)] += 1


@pytest.mark.parametrize("video,policy", [("synth-000", None), ("synth-002", "swap")])
def test_two_host_copies_per_frame_whatever_the_objects(
    video: str, policy, synth_root: Path, tmp_path: Path, small_model_config, monkeypatch
) -> None:
    run = make_run_config(
        synth_root, tmp_path / "s.zarr", [video], small_model_config,
        policy=_swap_policy() if policy else None,
    )  # fmt: skip
    context = load_context(run)
    watch = _Watch(context.scorer)
    real = transfer.copy_to_host

    def counted(tensor: torch.Tensor) -> transfer.HostCopy:
        with watch._lock:
            watch.copies += 1
        return real(tensor)

    monkeypatch.setattr("usam_video.engine.frames.copy_to_host", counted)
    threading.setprofile(watch.profile)
    sys.setprofile(watch.profile)
    try:
        result = label_video(context, video, PseudoLabelStore.open(run.store_path))
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    assert result.outcome == "labelled" and result.frames == 6
    assert result.objects == (3 if video == "synth-002" else 1)
    assert watch.copies == 2 * result.frames
    assert not watch.others, f"host copies outside copy_to_host: {dict(watch.others)}"


def test_session_records_cost_two_copies_with_a_late_object(
    synth_root: Path, small_model, monkeypatch
) -> None:
    """Objects entering later (untracked rows) change nothing: two copies per frame."""
    from usam_video.config import DatasetConfig
    from usam_video.datasets import open_dataset

    ds = open_dataset(DatasetConfig(name="s", root=synth_root))
    a, b, c = ds.prompts("synth-002")
    late = ObjectPrompt(c.object_id, 3, mask=ds.ground_truth("synth-002", 3).mask_of(c.object_id))
    session = PropagationSession(small_model, ds.frames("synth-002"), keep_candidates=True)
    for prompt in (a, b, late):
        session.add_prompt(prompt)
    copies: list[int] = []
    real = transfer.copy_to_host
    monkeypatch.setattr("usam_video.engine.frames.copy_to_host", lambda t: copies.append(1) or real(t))
    records = list(session.propagate())
    assert [r.tracked.tolist() for r in records[:4]] == [[True, True, False]] * 3 + [[True, True, True]]
    assert len(copies) == 2 * len(records)


def test_result_row_equals_what_the_store_reads_back(synth_root: Path, tmp_path: Path, small_model_config):
    """The label loop no longer reads back what it wrote: its own tally must say the same."""
    run = make_run_config(synth_root, tmp_path / "s.zarr", ["synth-002"], small_model_config)
    context = load_context(run)
    store = PseudoLabelStore.open(run.store_path)
    result = label_video(context, "synth-002", store)
    again = video_result(store, "synth-002", "labelled", result.seconds)
    assert result.summary() == again
    assert result.queued_human + result.queued_refine > 0  # the row has something to count


def test_device_scoring_equals_the_host_scorer(synth_root: Path, tmp_path: Path, small_model_config):
    """What the label loop stores (assembled and scored on the engine's device, then copied
    once) equals scoring the session's host records with the CPU scorer."""
    run = make_run_config(synth_root, tmp_path / "s.zarr", ["synth-002"], small_model_config)
    context = load_context(run)
    store = PseudoLabelStore.open(run.store_path)
    label_video(context, "synth-002", store)
    table = store.frame_table("synth-002")
    session = PropagationSession(context.model, context.reader.frames("synth-002"))
    prompts: list[ObjectPrompt] = context.reader.prompts("synth-002")
    for prompt in prompts:
        session.add_prompt(prompt)
    for record in session.propagate():
        scores = score_frame(record, context.heads)
        # The label loop scores FINISH_BATCH frames per matmul; a GEMM's rounding depends on its
        # number of rows, so the heads' outputs agree to float32 rounding, not bit for bit.
        np.testing.assert_allclose(table.scores[record.frame_index], scores.values, rtol=0, atol=1e-5)
        np.testing.assert_allclose(
            table.candidate_scores[record.frame_index], scores.candidate_values, rtol=0, atol=1e-5
        )
        if not record.is_prompt.any():  # a prompt frame stores the prompt itself
            assert (store.read_masks("synth-002", record.frame_index) == record.masks).all()


@pytest.mark.parametrize("batch", [1, 3])
def test_frames_scored_in_batches_store_what_one_at_a_time_stores(
    synth_root: Path, tmp_path: Path, small_model_config, monkeypatch, batch: int
) -> None:
    """Scoring several frames per call of the heads changes no decision and loses no frame,
    whatever the video's length modulo the batch (the last batch is partial)."""
    import usam_video.pipeline.label as label

    run = make_run_config(synth_root, tmp_path / "s.zarr", ["synth-002"], small_model_config)
    context = load_context(run)
    tables = {}
    for size in (batch, label.FINISH_BATCH):
        monkeypatch.setattr(label, "FINISH_BATCH", size)
        store = PseudoLabelStore.open(tmp_path / f"b{size}.zarr")
        result = label_video(context, "synth-002", store)
        assert result.frames == store.frame_table("synth-002").status.shape[0]
        tables[size] = store.frame_table("synth-002")
    one, many = tables[batch], tables[label.FINISH_BATCH]
    assert one.status.shape[0] % label.FINISH_BATCH  # a partial last batch is exercised
    np.testing.assert_array_equal(one.status, many.status)
    np.testing.assert_array_equal(one.reason, many.reason)
    np.testing.assert_allclose(one.scores, many.scores, rtol=0, atol=1e-5)


def test_the_frames_held_are_finished_before_the_last_frame_arrives(
    synth_root: Path, tmp_path: Path, small_model_config, monkeypatch
) -> None:
    """Batches are at most FINISH_BATCH frames, and the last holds the last frame alone: the
    others are finished while SAM 2 still works on it, not after propagation has ended."""
    import usam_video.pipeline.label as label
    from usam_video.engine.frames import FrameAssembler

    batches: list[list[int]] = []
    real_flush = FrameAssembler.flush

    def recording(self: FrameAssembler) -> list:
        frames = real_flush(self)
        batches.append([f.frame_index for f in frames])
        return frames

    monkeypatch.setattr(FrameAssembler, "flush", recording)
    run = make_run_config(synth_root, tmp_path / "s.zarr", ["synth-002"], small_model_config)
    result = label_video(load_context(run), "synth-002", PseudoLabelStore.open(run.store_path))
    assert [i for batch in batches for i in batch] == list(range(result.frames))
    assert all(1 <= len(batch) <= label.FINISH_BATCH for batch in batches)
    assert batches[-1] == [result.frames - 1]
    assert (result.frames - 1) % label.FINISH_BATCH  # without the rule, the last batch would hold more
