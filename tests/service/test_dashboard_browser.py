"""What a curator sees on the Prefect UI, rendered by a real browser (Debian's headless Chromium).

The flow run of the reference labelling run is loaded on the (default, V2) dashboard: the run page
with its Artifacts tab, the run's table artifact and its markdown artifact of score plots. The
rendered DOM must show the run, its state, its artifacts, the per-video table and the plot;
screenshots (and the DOMs) are saved under ``build/test-artifacts/service/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.service.helpers import ARTIFACTS_DIR, VIDEOS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1400,1000",
)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    command = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)


def _visible_text(dom: str) -> str:
    """The page's text: scripts and styles dropped, tags removed, whitespace collapsed."""
    dom = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def render(url: str, expected: list[str], profile: Path, screenshot: Path) -> str:
    """The DOM of ``url`` once the single-page app has fetched its data and shows every string
    of ``expected`` (retried with a longer JavaScript time budget on a slow machine); a
    screenshot of the same page load goes to ``screenshot`` (one Chromium run does both: each
    load of the UI fetches its bundles and data again)."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    dom = ""
    for budget_ms in (15_000, 40_000, 90_000):
        args = [f"--virtual-time-budget={budget_ms}", "--dump-dom", f"--screenshot={screenshot}", url]
        dom = _run_chromium(args, profile).stdout
        if all(text in _visible_text(dom) for text in expected):
            break
    screenshot.with_suffix(".html").write_text(dom)
    return dom


def _reference_artifacts(server: Any, run_name: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    kinds = ("summary", "progress", "scores")
    keys = [f"{run_name}-{kind}" for kind in kinds]
    with server.settings(), get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
        artifacts = {a.key: a for a in found}
        assert sorted(artifacts) == sorted(keys), f"artifacts of {run_name}: {sorted(artifacts)}"
        flow_run = client.read_flow_run(artifacts[keys[0]].flow_run_id)
    return {"flow_run": flow_run, **{kind: artifacts[key] for kind, key in zip(kinds, keys, strict=True)}}


@dataclass(frozen=True)
class RunPage:
    """The reference run's flow run, its artifacts by key, and its rendered Artifacts tab."""

    found: dict[str, Any]
    by_key: dict[str, Any]
    text: str


@pytest.fixture(scope="module")
def run_page(prefect_server, reference_run, tmp_path_factory: pytest.TempPathFactory) -> RunPage:
    """The run page with its Artifacts tab, rendered once for both tests below: it must name the
    run, its state, its summary/progress/scores artifacts, the review overview and every video's
    review page."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = _reference_artifacts(prefect_server, reference_run.name)
    flow_run = found["flow_run"]
    with prefect_server.settings(), get_client(sync_client=True) as client:
        of_run = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    by_key = {a.key: a for a in of_run if a.key}
    pages = sorted(k for k in by_key if k.startswith(f"{reference_run.name}-video-"))
    expected = [
        flow_run.name,
        "Completed",
        "pseudo-label-dataset",
        *(found[k].key for k in ("summary", "progress", "scores")),
        f"{reference_run.name}-review",
        *pages,
    ]
    url = f"{prefect_server.ui_url}/v2/runs/flow-run/{flow_run.id}?tab=Artifacts"
    profile = tmp_path_factory.mktemp("chromium-profile")
    text = _visible_text(render(url, expected, profile, ARTIFACTS_DIR / "flow-run.png"))
    return RunPage(found, by_key, text)


def test_flow_run_page_and_its_table_render_in_chromium(
    prefect_server, reference_run, run_page: RunPage, tmp_path: Path
) -> None:
    found = run_page.found
    flow_run, summary, scores = found["flow_run"], found["summary"], found["scores"]
    assert {found[k].flow_run_id for k in ("summary", "progress", "scores")} == {flow_run.id}
    assert float(found["progress"].data) == 100.0  # per-video progress, complete
    profile = tmp_path / "chromium-profile"

    expected = [
        flow_run.name,
        "Completed",
        "pseudo-label-dataset",
        summary.key,
        found["progress"].key,
        scores.key,
    ]
    for item in expected:
        assert item in run_page.text, f"{item!r} not on the rendered flow-run page: {run_page.text[:2000]}"

    table_page = f"{prefect_server.ui_url}/v2/artifacts/artifact/{summary.id}"
    columns = [
        "video_id",
        "outcome",
        "frames",
        "objects",
        "accepted",
        "queued_by_reason",
        "corrected",
        "mean_predicted_iou",
        "min_predicted_iou",
        "seconds",
    ]
    dom = render(table_page, [*VIDEOS, *columns], profile, ARTIFACTS_DIR / "summary-table.png")
    assert "<table" in dom
    table = _visible_text(dom[dom.index("<table") : dom.index("</table>")])
    for item in [*VIDEOS, *columns, "labelled"]:
        assert item in table, f"{item!r} not in the rendered table: {table[:2000]}"
    assert flow_run.name in _visible_text(dom)  # the artifact links back to its run

    plots_page = f"{prefect_server.ui_url}/v2/artifacts/artifact/{scores.id}"
    title = f"Scores of run {reference_run.name}"
    dom = render(plots_page, [title], profile, ARTIFACTS_DIR / "score-plots.png")
    assert title in _visible_text(dom)
    assert re.search(r"<img[^>]+src=\"data:image/png;base64,", dom), "no rendered score plot"
    for name in ("flow-run.png", "summary-table.png", "score-plots.png"):
        assert (ARTIFACTS_DIR / name).stat().st_size > 10_000  # a real picture, not an empty page


def test_video_review_page_renders_in_chromium(
    prefect_server, reference_run, run_page: RunPage, tmp_path: Path
) -> None:
    """Two clicks from the run: its Artifacts tab lists the review overview and a page per video;
    the most uncertain video's page shows its timeline and worst frames as images."""
    import json

    by_key = run_page.by_key
    review = by_key[f"{reference_run.name}-review"]
    pages = sorted(k for k in by_key if k.startswith(f"{reference_run.name}-video-"))
    assert len(pages) == len(VIDEOS)  # under the default cap every video has a page
    summary = by_key[f"{reference_run.name}-summary"]
    rows = summary.data if isinstance(summary.data, list) else json.loads(summary.data)
    top = next(row for row in rows if row["uncertainty_rank"] == 1)
    assert top["review_page"] in pages and top["review_page"] in review.data
    profile = tmp_path / "chromium-profile"

    # Click 1: the run's Artifacts tab names the overview and every video's page.
    for item in [review.key, *pages]:
        assert item in run_page.text, f"{item!r} not on the rendered flow-run page: {run_page.text[:2000]}"
    overview_page = f"{prefect_server.ui_url}/v2/artifacts/artifact/{review.id}"
    shot = ARTIFACTS_DIR / "review-overview.png"
    text = _visible_text(render(overview_page, [top["video_id"], "worst frames"], profile, shot))
    assert top["video_id"] in text and top["review_page"] in text

    # Click 2: the video's page, its timeline and worst-frame strip rendered as images.
    page = by_key[top["review_page"]]
    video_page = f"{prefect_server.ui_url}/v2/artifacts/artifact/{page.id}"
    expected = [top["video_id"], "Timeline", "Worst frames", "uncertainty rank 1"]
    dom = render(video_page, expected, profile, ARTIFACTS_DIR / "video-review.png")
    text = _visible_text(dom)
    for item in expected:
        assert item in text, f"{item!r} not on the rendered video page: {text[:2000]}"
    assert re.search(r"<img[^>]+src=\"data:image/png;base64,", dom), "no rendered timeline"
    assert re.search(r"<img[^>]+src=\"data:image/jpeg;base64,", dom), "no rendered worst-frame strip"
    for name in ("flow-run.png", "review-overview.png", "video-review.png"):
        assert (ARTIFACTS_DIR / name).stat().st_size > 10_000
