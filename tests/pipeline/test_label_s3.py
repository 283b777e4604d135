"""A run labels into an S3 store named by its config: ``store: s3://...`` with
``storage_options`` (the endpoint), on the session's moto server; nothing comes from AWS_* endpoint
variables, and the options never reach the stored run config."""

from __future__ import annotations

import json
from pathlib import Path

import s3fs
from typer.testing import CliRunner

from tests.conftest import make_run_config
from tests.s3_fixtures import S3Endpoint
from usam_video.cli import app
from usam_video.pipeline import label_dataset
from usam_video.store import PseudoLabelStore


def test_a_run_labels_into_s3_through_its_storage_options(
    s3_endpoint: S3Endpoint, synth_root: Path, tmp_path: Path, small_model_config, monkeypatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the config alone names the endpoint
    url = s3_endpoint.url_for("run")
    options = {"endpoint_url": s3_endpoint.url}
    local = make_run_config(synth_root, tmp_path / "s.zarr", ["synth-000"], small_model_config)
    run = local.model_copy(update={"store": url, "storage_options": options})

    results = label_dataset(run)

    assert [(r.video_id, r.outcome) for r in results] == [("synth-000", "labelled")]
    store = PseudoLabelStore.open(url, "r", storage_options=options)
    assert store.is_complete("synth-000") and store.claims() == []  # the claim was released
    assert "storage_options" not in json.dumps(store.summary("synth-000").provenance)
    # The same run into a local folder writes the same masks.
    label_dataset(local)
    reference = PseudoLabelStore.open(tmp_path / "s.zarr", "r")
    for frame in range(reference.frame_table("synth-000").status.shape[0]):
        assert (store.read_masks("synth-000", frame) == reference.read_masks("synth-000", frame)).all()
    objects = s3fs.S3FileSystem(endpoint_url=s3_endpoint.url).find(url.removeprefix("s3://"))
    assert any(key.endswith("zarr.json") for key in objects)  # written on the endpoint itself
    # `queue` takes the URL as it is (a Path would fold "s3://" into "s3:/"), endpoint from AWS_*.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint.url)
    runner = CliRunner()
    remote = runner.invoke(app, ["queue", url, "--json"])
    assert remote.exit_code == 0, remote.output
    local_queue = runner.invoke(app, ["queue", str(tmp_path / "s.zarr"), "--json"])
    shown, expected = json.loads(remote.stdout), json.loads(local_queue.stdout)
    assert shown.pop("store") == url
    assert shown == {k: v for k, v in expected.items() if k != "store"}
    # Every command that takes a store takes its URL (they took a Path, which folds the "//").
    done = runner.invoke(app, ["verify", url])
    assert done.exit_code == 0 and "1 video(s)" in done.output, done.output
    exports = {}
    for name, where in (("s3", url), ("local", str(tmp_path / "s.zarr"))):
        out = tmp_path / f"export-{name}"
        done = runner.invoke(app, ["export", where, "--format", "png", "--out", str(out), "--all-queued"])
        assert done.exit_code == 0, done.output
        exports[name] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}
    assert exports["s3"] and exports["s3"] == exports["local"]
