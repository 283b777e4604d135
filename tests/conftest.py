"""Shared fixtures: the real sample data beside the repo, the small SAM 2 model, generated
datasets, and one session-scoped Prefect test harness."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import pytest

from tests.s3_fixtures import s3_endpoint, s3_env  # noqa: F401  (fixtures for every package)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"
SHARED_DATA = Path(os.environ.get("USAM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
SMALL_SAM2_CONFIG = CONFIGS / "models" / "sam2_small_256.yaml"

os.environ.setdefault("TQDM_DISABLE", "1")
# The test models are tiny: one intra-op thread avoids oversubscribing a 2-core machine (which
# made small propagations 3-7x slower), here and in the subprocesses tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a dependency
    pass


# Two kinds of tests go to one xdist worker as a whole, the rest one by one to whichever worker
# is free (`make test` runs `--dist loadgroup`):
# - the service package (tests/service), which starts a real Prefect server and labels a
#   reference run (about 30 s) in each worker that runs one of its tests;
# - every module that defines a module-, package- or class-scoped fixture: one by one, its tests
#   alternate between the two workers and each worker built the fixture (sam2's trainer module
#   trained micro twice, 18 s of CPU each; labelled stores, feature records: 1-5 s each).
# xdist's own `xdist_group` mark cannot do it under pytest 9.2: xdist 3.8.0 renames the item's
# `_nodeid`, and pytest 9.2's `nodeid` no longer reads it.
_SHARED_FIXTURE = re.compile(r"""scope\s*=\s*["'](?:module|package|class)["']""")


@functools.cache
def _has_shared_fixture(path: Path) -> bool:
    """Whether the test module at ``path`` defines a fixture that its tests share."""
    try:
        return _SHARED_FIXTURE.search(path.read_text(encoding="utf-8")) is not None
    except OSError:  # not a file here (a nodeid xdist made up): schedule its tests one by one
        return False


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: nothing to do without it
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001 (xdist's Producer)
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath

    class SharedSetUpOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith("tests/service/"):
                return "tests/service"
            module = nodeid.split("::", 1)[0]
            return module if _has_shared_fixture(root / module) else nodeid

    return SharedSetUpOnOneWorker(config, log)


@pytest.fixture(scope="session")
def davis_root() -> Path:
    root = SHARED_DATA / "davis"
    if not root.is_dir():
        pytest.fail(f"the shared DAVIS sample is missing at {root} (set USAM_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def small_model_config():
    from usam_video.config import ModelConfig

    return ModelConfig(
        name="small", sam2_config=str(SMALL_SAM2_CONFIG), random_init=True, seed=0, device="cpu"
    )


@pytest.fixture(scope="session")
def small_model(small_model_config):
    from usam_video.engine import build_model

    return build_model(small_model_config)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A generated DAVIS-layout dataset: synth-000 (1 object), synth-001 (2), synth-002 (3)."""
    from usam_video.datasets.synthetic import make_demo_dataset

    root = tmp_path_factory.mktemp("synth")
    make_demo_dataset(root, num_videos=3, num_frames=6, height=96, width=128, seed=0)
    return root


def make_run_config(
    dataset_root: Path, store: Path, videos: list[str], small_model_config, policy=None, heads=None
):
    """A RunConfig over a DAVIS-layout folder with the small model and random heads."""
    from usam_video.config import DatasetConfig, HeadsConfig, PolicyConfig, PolicyRule, RunConfig
    from usam_video.heads import HEAD_NAMES

    if policy is None:
        policy = PolicyConfig(
            name="test",
            rules=[
                PolicyRule(name="low_sam_iou", score="sam_iou", op="<", threshold=0.495, route="human"),
                PolicyRule(name="high_task_gap", score="task_gap", op=">", threshold=0.012, route="refine"),
            ],
        )
    return RunConfig(
        name="test-run",
        dataset=DatasetConfig(name="synth", root=dataset_root, videos=videos),
        model=small_model_config,
        heads=heads if heads is not None else HeadsConfig(random_init=True, names=list(HEAD_NAMES)),
        policy=policy,
        store=str(store),
    )


@pytest.fixture(scope="session")
def prefect_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect database migrated once per session (tests/prefect_db.py): each server a test
    starts gets a copy instead of migrating a new file."""
    from tests.prefect_db import migrated_template

    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's folder sits in the session's own: the template is shared there.
    return migrated_template(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


@pytest.fixture(scope="session")
def prefect_harness(prefect_db_template: Path):
    """One ephemeral Prefect server for the whole session, on a copy of the migrated database."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    import tempfile

    import prefect.testing.utilities as harness_module

    from tests.prefect_db import seed

    def seeded_temp_dir() -> str:
        # The harness keeps its database as ``prefect-test.db`` in a folder from mkdtemp.
        folder = tempfile.mkdtemp()
        seed(prefect_db_template, Path(folder) / "prefect-test.db")
        return folder

    # Without the name (another Prefect), the harness migrates a new file: slower, still right.
    patch = pytest.MonkeyPatch()
    if hasattr(harness_module, "mkdtemp"):
        patch.setattr(harness_module, "mkdtemp", seeded_temp_dir)
    try:
        with harness_module.prefect_test_harness(server_startup_timeout=90):
            patch.undo()
            yield
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def world(tmp_path_factory, synth_root: Path, small_model_config):
    """The bad-input tables' shared inputs (tests/bad_input_helpers.py: built once per session)."""
    from tests.bad_input_helpers import bad_input_world

    return bad_input_world(tmp_path_factory, synth_root, small_model_config)


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """Three generated videos of 12 frames (the "test" seed stream, never trained on)."""
    from usam_video.config import DatasetConfig
    from usam_video.datasets.synthetic import generated_specs, write_davis_dataset

    root = tmp_path_factory.mktemp("release-data")
    names = write_davis_dataset(root, generated_specs("test", 3, num_frames=12), split="test")
    return DatasetConfig(name="generated-test", root=root, videos=names)


@pytest.fixture(scope="session")
def micro_store(generated, tmp_path_factory) -> Path:
    """The template store: never modify it (copy it with :func:`store_copy`)."""
    import torch

    from usam_video.config import HeadsConfig, RunConfig, load_model_config, load_policy_config
    from usam_video.pipeline import label_dataset

    store = tmp_path_factory.mktemp("release-store") / "store.zarr"
    run = RunConfig(
        name="release-test",
        dataset=generated,
        model=load_model_config(CONFIGS / "models" / "micro.yaml"),
        heads=HeadsConfig(directory=REPO_ROOT / "usam_video" / "weights" / "heads-micro", token_dim=128),
        policy=load_policy_config(CONFIGS / "policies" / "trained.yaml"),
        store=str(store),
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = label_dataset(run)
    finally:
        torch.set_num_threads(before)
    assert all(r.outcome == "labelled" for r in results)
    return store
