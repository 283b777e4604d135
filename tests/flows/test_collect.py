"""Flows collect their tasks as they finish: a task that finishes early (or fails) is reported
before one submitted earlier, and the refine flow still reports in the order of its videos."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from tests.conftest import make_run_config
from usam_video.config import ModelRefinement, PolicyConfig, PolicyRule


def test_results_come_as_tasks_finish(prefect_harness) -> None:
    """The first task submitted finishes only once the flow has collected the two others: in
    submission order the flow would wait for it first and it would time out."""
    from prefect import flow, task

    from flows.collect import as_they_complete

    collected_two = threading.Event()

    @task
    def step(position: int) -> int:
        if position == 0:
            assert collected_two.wait(60), "the later tasks were not collected before the first finished"
        elif position == 1:
            raise ValueError("broken on purpose")
        return position

    @flow
    def fan_out() -> list[tuple[int, int | None, str | None]]:
        futures = [step.submit(i) for i in range(3)]
        out = []
        for i, result, error in as_they_complete(futures):
            out.append((i, result, None if error is None else str(error)))
            if len(out) == 2:
                collected_two.set()
        return out

    out = fan_out()
    assert out[-1] == (0, 0, None)
    assert sorted(out, key=lambda row: row[0]) == [(0, 0, None), (1, None, "broken on purpose"), (2, 2, None)]


def test_refine_flow_reports_in_the_order_of_its_videos(
    prefect_harness, synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    from flows.refine import refine_flow
    from usam_video.pipeline import label_dataset

    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    larger = small_model_config.model_copy(update={"seed": 3, "name": "larger"})
    policy = PolicyConfig(
        rules=[PolicyRule(name="bigger", score="model_gap", op=">", threshold=-1.0, route="model")],
        model_refinement=ModelRefinement(model=larger),
    )
    run = make_run_config(data, tmp_path / "s.zarr", ["synth-000"], small_model_config, policy=policy)
    label_dataset(run)
    results = refine_flow(run.store_path, ["no-such-video", "synth-000"])
    assert [r.video_id for r in results] == ["no-such-video", "synth-000"]
    assert results[0].failed and "no-such-video" in results[0].error and results[0].model == ""
    assert results[1].model == "larger" and results[1].refined > 0 and not results[1].failed
