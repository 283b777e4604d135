"""One pass through a run (issue #33): the run context is built once per process and run config
and handed down, so one ``usam-video run`` of N videos parses its config once, opens its dataset
at most 1 + N times and its store at most 2 + N times, and reads back none of the frame tables
the label loop wrote."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import make_run_config
from usam_video.pipeline.context import context_of, open_run


def _write_run(tmp_path: Path, synth_root: Path, small_model_config, videos: list[str]) -> Path:
    run = make_run_config(synth_root, tmp_path / "store.zarr", videos, small_model_config)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run.model_dump(mode="json")))
    return path


@pytest.fixture()
def counted(monkeypatch) -> Counter:
    """Counts run-config parses, dataset opens, store opens and frame-table reads."""
    from usam_video.config import loading
    from usam_video.datasets import registry
    from usam_video.store import PseudoLabelStore

    counts: Counter = Counter()
    real_read = loading.read_yaml

    def read_yaml(path):
        if Path(path).name == "run.yaml":
            counts["config parses"] += 1
        return real_read(path)

    monkeypatch.setattr(loading, "read_yaml", read_yaml)
    for fmt, reader in list(registry.READERS.items()):

        def opened(config, _reader=reader):
            counts["dataset opens"] += 1
            return _reader(config)

        monkeypatch.setitem(registry.READERS, fmt, opened)
    real_open = PseudoLabelStore.open.__func__
    real_table = PseudoLabelStore.frame_table

    def open_store(cls, *args, **kwargs):
        counts["store opens"] += 1
        return real_open(cls, *args, **kwargs)

    def frame_table(self, video_id):
        counts["frame tables read"] += 1
        return real_table(self, video_id)

    monkeypatch.setattr(PseudoLabelStore, "open", classmethod(open_store))
    monkeypatch.setattr(PseudoLabelStore, "frame_table", frame_table)
    return counts


def test_one_run_builds_its_context_once(
    prefect_harness, counted: Counter, synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    from usam_video.cli import app

    videos = ["synth-000", "synth-001", "synth-002"]
    config = _write_run(tmp_path, synth_root, small_model_config, videos)
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    n = len(videos)
    # The goals are at most 1 + N dataset opens and 2 + N store opens; the run does better:
    # the context opens both, and each task opens its own store (a store object is not
    # shared by threads writing different videos).
    assert counted["config parses"] == 1, counted
    assert counted["dataset opens"] == 1, counted
    assert counted["store opens"] == 1 + n, counted
    assert counted["frame tables read"] == 0, counted


def test_tasks_find_the_context_by_token_and_a_new_process_builds_it_once(
    counted: Counter, synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    config = _write_run(tmp_path, synth_root, small_model_config, ["synth-000"])
    context = open_run(config)
    assert context_of(config, context.token) is context
    assert counted["config parses"] == 1
    # A worker that never saw the token (another process): built once there, then shared by
    # every task that arrives with it, even at the same time.
    found: list = []
    threads = [threading.Thread(target=lambda: found.append(context_of(config, "other"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counted["config parses"] == 2
    assert len({id(c) for c in found}) == 1 and found[0].token == "other"
    assert found[0].model is context.model  # the model is shared by content


def test_an_edited_config_is_read_afresh_by_the_next_run(
    synth_root: Path, tmp_path: Path, small_model_config
) -> None:
    """Nothing keeps a parsed config beyond its run: a served deployment's next run reads the
    file as it is now."""
    config = _write_run(tmp_path, synth_root, small_model_config, ["synth-000"])
    first = open_run(config)
    data = yaml.safe_load(config.read_text())
    data["name"] = "edited"
    config.write_text(yaml.safe_dump(data))
    second = open_run(config)
    assert (first.run.name, second.run.name) == ("test-run", "edited")
    assert context_of(config, first.token).run.name == "test-run"  # a run keeps its own
    assert context_of(config, None).run.name == "edited"


def test_opening_a_run_builds_no_sam2_until_a_video_needs_it(
    tmp_path: Path, synth_root: Path, small_model_config, monkeypatch
) -> None:
    """The flow's process of a Dask run opens the run (config, dataset, heads checked against the
    model's token width, policy, warnings) and never labels: it must not hold SAM 2's weights
    (hundreds of MB for a real checkpoint). The first video that needs the model builds it, once."""
    from usam_video.pipeline import context as context_module
    from usam_video.pipeline.label import untrained_warnings

    built: list[str] = []
    real_build = context_module.build_model

    def counting_build(config):
        built.append(config.name)
        return real_build(config)

    context_module.cached_model.cache_clear()
    monkeypatch.setattr(context_module, "build_model", counting_build)
    context = open_run(_write_run(tmp_path, synth_root, small_model_config, ["synth-000"]))
    assert untrained_warnings(context) and context.device.type == "cpu" and context.score_names
    assert built == []
    models = []
    threads = [threading.Thread(target=lambda: models.append(context.model)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == [small_model_config.name] and len({id(m) for m in models}) == 1
    assert context.model.token_dim == context.heads.token_dim
    context_module.cached_model.cache_clear()  # the counting builder's model is not kept
