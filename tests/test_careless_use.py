"""Issue #32, careless use of the store and its output folders: every case is one row of one table.

Each row prepares copies (of one module-scoped labelled store, of a report, of a folder the user
owns), runs what a careless user would run (the CLI through typer's runner; the library where the
CLI would start a Prefect flow, except for ``refine``, whose exit code is the point), and checks:
the exit code; one line that names the file and says what is wrong; no traceback; and every
watched folder (the store, the user's folder) byte for byte the same before and after.

Tests run as root, where ``chmod`` cannot make a folder read-only: a read-only file system, a
full disk and a file where a folder belongs are an ``OSError`` (EROFS, ENOSPC, ENOTDIR) raised
at the write boundary (:func:`os_refuses`: ``open`` for writing, ``mkdir``, ``rename``,
``replace``, ``unlink``, ``rmdir`` under a folder), except where a real one is cheap (a store
path under a regular file gives the OS's own ENOTDIR).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from tests.bad_input_helpers import Outcome, chunk, cli, digest, flip_byte, lib
from tests.conftest import make_run_config
from tests.review.helpers import QUEUE_ALL, VIDEO, labelled_template, one_torch_thread
from usam_video.config import ModelRefinement, PolicyConfig, PolicyRule, RunConfig
from usam_video.errors import UsamVideoError
from usam_video.output_folder import MARKER
from usam_video.pipeline import label_dataset, refine_store
from usam_video.store import PseudoLabelStore


@dataclass(frozen=True)
class World:
    """Module material, never modified: the review template (``VIDEO`` labelled, every tracked
    frame-object queued for a human), a store of ``VIDEO`` queued for the larger model, and an
    earlier report of the template."""

    synth_root: Path
    template: Path
    refinable: Path
    report: Path
    small_model_config: object

    def run(self, store: Path, policy: PolicyConfig = QUEUE_ALL) -> RunConfig:
        """The template's own run config (same fingerprint) over ``store``."""
        return make_run_config(self.synth_root, store, [VIDEO], self.small_model_config, policy)


@dataclass(frozen=True)
class Trial:
    """A prepared row: the folders that must stay byte-identical, what to run, further checks."""

    watched: tuple[Path, ...]
    act: Callable[[], Outcome]
    then: Callable[[Outcome], None] | None = None


@contextlib.contextmanager
def os_refuses(root: Path, code: int, where: Callable[[str], bool] = lambda path: True) -> Iterator[None]:
    """Every write under ``root`` (whose path also passes ``where``) fails with ``OSError(code)``,
    as on a read-only file system (EROFS), a full disk (ENOSPC) or under a file (ENOTDIR)."""
    root = root.absolute()

    def refused(path: object) -> bool:
        if isinstance(path, int):
            return False
        p = Path(os.fsdecode(path)).absolute()
        return (p == root or root in p.parents) and where(str(p))

    def error(path: object) -> OSError:
        return OSError(code, os.strerror(code), os.fsdecode(path))  # type: ignore[arg-type]

    real_open = builtins.open

    def fake_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if any(c in mode for c in "wax+") and refused(file):
            raise error(file)
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    def guard(real: Callable[..., object]) -> Callable[..., object]:
        def fake(path: object, *args: object, **kwargs: object) -> object:
            if kwargs.get("dir_fd") is None and refused(path):
                raise error(path)
            return real(path, *args, **kwargs)

        return fake

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtins, "open", fake_open)
        patch.setattr(io, "open", fake_open)
        for name in ("mkdir", "rename", "replace", "unlink", "remove", "rmdir"):
            patch.setattr(os, name, guard(getattr(os, name)))
        yield


def refusing(root: Path, code: int, act: Callable[[], Outcome], **kw: Callable[[str], bool]) -> Outcome:
    with os_refuses(root, code, **kw):
        return act()


def store_copy(world: World, tmp: Path, source: Path | None = None) -> Path:
    return Path(shutil.copytree(source or world.template, tmp / "store.zarr"))


def user_folder(tmp: Path, **files: str) -> Path:
    folder = tmp / "mine"
    folder.mkdir()
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(text)
    return folder


def label(run: RunConfig) -> Outcome:
    """What the flow's task does for each video, in this process; failed videos are the refusal."""
    try:
        with one_torch_thread():
            results = label_dataset(run)
    except UsamVideoError as exc:
        return Outcome(1, str(exc))
    failed = [f"{r.video_id}: {r.error}" for r in results if r.outcome == "failed"]
    return Outcome(1 if failed else 0, "\n".join(failed))


def without_logging_errors(outcome: Outcome) -> Outcome:
    """``outcome`` without logging's "--- Logging error ---" reports: Prefect's console handler
    keeps the stream of the CliRunner call that first set up its logging, closed since. An
    artefact of running flows under the runner, never printed to a user."""
    text = re.sub(r"--- Logging error ---\n.*?\nArguments: [^\n]*\n", "", outcome.text, flags=re.S)
    return Outcome(outcome.code, text)


# --- item 3: report --out never overwrites a user's folder, never leaves half a report --------
def report_into_user_folder(world: World, tmp: Path) -> Trial:
    """Issue item 3: an index.html of the user's was overwritten without a word."""
    store, mine = store_copy(world, tmp), user_folder(tmp, index_html="<p>my notes</p>")
    return Trial((store, mine), lambda: cli("report", store, "--out", mine, "--no-jf"))


def report_over_edited_report(world: World, tmp: Path) -> Trial:
    """Own case: an earlier report the user then annotated is the user's again."""
    store, out = store_copy(world, tmp), Path(shutil.copytree(world.report, tmp / "report"))
    with (out / "index.html").open("a") as f:
        f.write("<!-- reviewed by A. on Monday -->")
    return Trial((store, out), lambda: cli("report", store, "--out", out, "--no-jf"))


def report_over_own_report(world: World, tmp: Path) -> Trial:
    """An unchanged earlier report is replaced whole (correct behaviour, not a refusal)."""
    store, out = store_copy(world, tmp), Path(shutil.copytree(world.report, tmp / "report"))

    def then(outcome: Outcome) -> None:
        assert json.loads((out / MARKER).read_text())["kind"] == "report"
        assert sorted(p.name for p in tmp.iterdir()) == ["report", "store.zarr"]  # nothing left over

    return Trial((store,), lambda: cli("report", store, "--out", out, "--no-jf"), then)


def report_forced_into_user_folder(world: World, tmp: Path) -> Trial:
    """Own case: --force writes the report's files and keeps the user's others."""
    store, mine = store_copy(world, tmp), user_folder(tmp, notes_txt="mine", index_html="old")
    notes = (mine / "notes.txt").read_bytes()

    def then(outcome: Outcome) -> None:
        assert (mine / "notes.txt").read_bytes() == notes and (mine / "videos").is_dir()
        assert "Review report" in (mine / "index.html").read_text()
        again = cli("report", store, "--out", mine, "--no-jf")  # notes.txt is not the report's
        assert again.code == 2 and "notes.txt" in again.text

    return Trial((store,), lambda: cli("report", store, "--out", mine, "--no-jf", "--force"), then)


def report_out_is_a_file(world: World, tmp: Path) -> Trial:
    """Own case: --out names a regular file."""
    store, mine = store_copy(world, tmp), user_folder(tmp, index_html="x")
    return Trial((store, mine), lambda: cli("report", store, "--out", mine / "index.html", "--no-jf"))


def report_into_the_store(world: World, tmp: Path) -> Trial:
    """Own case: --out names the store itself (a tab-completed path one word too short)."""
    store = store_copy(world, tmp)
    return Trial((store,), lambda: cli("report", store, "--out", store, "--no-jf"))


def report_read_only(world: World, tmp: Path) -> Trial:
    """Issue item 6: a report into a read-only folder gave a traceback."""
    store, mine = store_copy(world, tmp), user_folder(tmp)
    out = mine / "report"
    return Trial(
        (store, mine), lambda: refusing(mine, errno.EROFS, lambda: cli("report", store, "--out", out))
    )


def report_disk_full_keeps_earlier(world: World, tmp: Path) -> Trial:
    """Own case: the disk fills while a report is rewritten: the earlier one is left whole."""
    store, out = store_copy(world, tmp), Path(shutil.copytree(world.report, tmp / "report"))

    def act() -> Outcome:
        return refusing(
            tmp,
            errno.ENOSPC,
            lambda: cli("report", store, "--out", out, "--no-jf"),
            where=lambda p: "index.html" in p,
        )

    def then(outcome: Outcome) -> None:
        assert sorted(p.name for p in tmp.iterdir()) == ["report", "store.zarr"]  # no half report

    return Trial((store, out), act, then)


# --- item 4: run and doctor never adopt a foreign folder; damage is never skipped -------------
def run_into(world: World, tmp: Path, make: Callable[[Path], None]) -> Trial:
    folder = tmp / "target"
    folder.mkdir()
    make(folder)
    return Trial((folder,), lambda: label(world.run(folder)))


def zarr_group(folder: Path) -> None:
    zarr.open_group(folder, mode="a").create_array("image", shape=(4,), dtype="int32")


def doctor_on_foreign(world: World, tmp: Path) -> Trial:
    """Issue item 4: doctor called a user's folder "not created yet ... ready"."""
    mine = user_folder(tmp, notes_txt="mine")
    return Trial((mine,), lambda: cli("doctor", "--store", mine, "--prefect-timeout", "0.1"))


def run_over_damaged_video(world: World, tmp: Path) -> Trial:
    """Issue item 4: a complete video whose masks chunk fails its checksum was skipped as complete."""
    store = store_copy(world, tmp)
    flip_byte(chunk(store, "masks"))
    return Trial((store,), lambda: label(world.run(store)))


def run_cli_over_damaged_video(world: World, tmp: Path) -> Trial:
    """The same through ``usam-video run`` (the Prefect flow): exit 1 and the reason on one line."""
    store = store_copy(world, tmp)
    flip_byte(chunk(store, "masks"))
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump(world.run(store).model_dump(mode="json")))
    return Trial((store,), lambda: without_logging_errors(cli("run", config)))


def run_disk_full(world: World, tmp: Path) -> Trial:
    """Issue item 6: a full disk gave a traceback and the video showed "NO (interrupted)"."""
    store = tmp / "fresh.zarr"
    masks_from_frame_2 = lambda p: bool(re.search(r"/masks/c/([2-9]|\d\d)/", p))  # noqa: E731

    def act() -> Outcome:
        labelled = refusing(tmp, errno.ENOSPC, lambda: label(world.run(store)), where=masks_from_frame_2)
        inspected = cli("inspect", store)
        return Outcome(labelled.code, labelled.text + "\n" + inspected.text)

    def then(outcome: Outcome) -> None:
        summary = PseudoLabelStore.open(store, "r").summary(VIDEO)
        assert not summary.complete and "No space left on device (ENOSPC)" in summary.failure
        assert "NO (failed: StoreWriteError" in outcome.text and "interrupted" not in outcome.text

    return Trial((), act, then)


# --- item 5: refine fails visibly, never writes into damage ------------------------------------
def refine_cli(world: World, tmp: Path, damage: bool, code: int | None) -> Trial:
    store = store_copy(world, tmp, world.refinable)
    if damage:
        flip_byte(chunk(store, "masks", frame=4))

    def refine() -> Outcome:
        return without_logging_errors(cli("refine", store))

    def act() -> Outcome:
        return refine() if code is None else refusing(store, code, refine)

    def then(outcome: Outcome) -> None:
        assert not re.search(r"\s-1\s", outcome.text)  # "left queued -1" of a failure

    return Trial((store,), act, then)


def refine_lib(world: World, tmp: Path, code: int) -> Trial:
    store = store_copy(world, tmp, world.refinable)
    return Trial((store,), lambda: refusing(store, code, lambda: lib(lambda: refine_store(store))))


# --- item 6 and 8: one-line errors, and an empty store that says why ---------------------------
def store_is_a_file(world: World, tmp: Path, *command: str) -> Trial:
    path = tmp / "labels:100:.zarr"  # and Rich must not turn ":100:" into an emoji (item 9)
    path.write_text("not a store")
    args = [str(path) if a == "{store}" else a for a in command]
    return Trial((tmp,), lambda: cli(*args))


def run_store_is_a_file(world: World, tmp: Path) -> Trial:
    path = tmp / "labels.zarr"
    path.write_text("not a store")
    return Trial((tmp,), lambda: label(world.run(path)))


def store_under_a_file(world: World, tmp: Path) -> Trial:
    """Own case: the store's parent is a regular file: the OS's own ENOTDIR, one line."""
    (tmp / "notes.txt").write_text("mine")
    return Trial((tmp,), lambda: label(world.run(tmp / "notes.txt" / "labels.zarr")))


def import_read_only(world: World, tmp: Path) -> Trial:
    """Issue item 6: an import into a read-only store gave a traceback."""
    from usam_video.pipeline import export_queue

    source = store_copy(world, tmp)
    out = export_queue(source, "png", tmp / "export").out
    store = source

    def act() -> Outcome:
        return refusing(store, errno.EROFS, lambda: cli("import", store, out))

    return Trial((store, out), act)


def inspect_empty_after_failure(world: World, tmp: Path) -> Trial:
    """Issue item 8: a store whose only video failed before labelling inspected as an empty table."""
    store = tmp / "fresh.zarr"
    data = Path(shutil.copytree(world.synth_root, tmp / "data"))
    (data / "Annotations" / "480p" / VIDEO / "00000.png").unlink()
    run = make_run_config(data, store, [VIDEO], world.small_model_config, QUEUE_ALL)

    def act() -> Outcome:
        labelled = label(run)
        assert labelled.code == 1 and "00000.png" in labelled.text
        return cli("inspect", store)

    return Trial((), act)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[World, Path], Trial]
    code: int  # expected exit code (1: a failed video or a refusal by the library)
    parts: tuple[str, ...]  # what the one line of the message must name
    line: str = "error:"  # how the one line starts ("" for a library message: the whole of it)


FOREIGN = ("expected a usam-video store or an empty folder", "notes.txt", "never writes into a folder")
REFUSED_REPORT = ("expected a new or empty folder or an earlier report", "--force")
CASES: list[Case] = [
    # --- item 3 ---------------------------------------------------------------------------------
    Case("report/into-user-folder", report_into_user_folder, 2, ("mine", *REFUSED_REPORT, "index.html")),
    Case("report/over-edited-report", report_over_edited_report, 2, ("report", "changed", "index.html")),
    Case("report/over-own-report", report_over_own_report, 0, ("review report:",), line="review report:"),
    Case(
        "report/forced-into-user-folder", report_forced_into_user_folder, 0, ("mine",), line="review report:"
    ),
    Case("report/into-the-store", report_into_the_store, 2, ("store.zarr", *REFUSED_REPORT, "zarr.json")),
    Case("report/out-is-a-file", report_out_is_a_file, 2, ("index.html", "got a regular file")),
    Case("report/read-only-folder", report_read_only, 2, ("report", "Read-only file system (EROFS)")),
    Case("report/disk-full-keeps-earlier", report_disk_full_keeps_earlier, 2, ("No space left on device",)),
    # --- item 4 ---------------------------------------------------------------------------------
    Case(
        "run/into-user-folder",
        lambda w, t: run_into(w, t, lambda f: (f / "notes.txt").write_text("mine")),
        1,
        ("target", *FOREIGN),
        line="",
    ),
    Case(
        "run/into-another-zarr-group",
        lambda w, t: run_into(w, t, zarr_group),
        1,
        ("target", "got another Zarr group", "image", "never writes into a Zarr group"),
        line="",
    ),
    Case("doctor/foreign-folder", doctor_on_foreign, 1, ("mine", *FOREIGN), line="FAIL  store"),
    Case(
        "run/over-damaged-video",
        run_over_damaged_video,
        1,
        (f"{VIDEO}: ", "store.zarr", "expected intact data", "masks", "checksum", "Nothing was written"),
        line="",
    ),
    Case(
        "run-cli/over-damaged-video",
        run_cli_over_damaged_video,
        1,
        (f"error: {VIDEO}: ", "DamagedVideoError", "expected intact data", "masks", "Nothing was written"),
    ),
    Case("run/disk-full", run_disk_full, 1, (VIDEO, "No space left on device (ENOSPC)", "masks/c/"), line=""),
    # --- item 5 ---------------------------------------------------------------------------------
    Case(
        "refine/read-only-store",
        lambda w, t: refine_cli(w, t, False, errno.EROFS),
        1,
        ("StoreWriteError", "store.zarr", "Read-only file system (EROFS)"),
    ),
    Case(
        "refine/damaged-masks-chunk",
        lambda w, t: refine_cli(w, t, True, None),
        1,
        ("DamagedVideoError", "store.zarr", "expected intact data", f"videos/{VIDEO}/masks", "frame 4"),
    ),
    Case(
        "refine/disk-full",
        lambda w, t: refine_lib(w, t, errno.ENOSPC),
        1,
        ("store.zarr", "No space left on device (ENOSPC)"),
        line="",
    ),
    Case(
        "refine/not-a-directory",
        lambda w, t: refine_lib(w, t, errno.ENOTDIR),
        1,
        ("store.zarr", "Not a directory (ENOTDIR)", "a file stands where a folder must be"),
        line="",
    ),
    # --- item 6 ---------------------------------------------------------------------------------
    Case(
        "inspect/store-is-a-file",
        lambda w, t: store_is_a_file(w, t, "inspect", "{store}"),
        2,
        ("labels:100:.zarr", "got a regular file"),
    ),
    Case(
        "verify/store-is-a-file",
        lambda w, t: store_is_a_file(w, t, "verify", "{store}"),
        2,
        ("labels:100:.zarr", "got a regular file"),
    ),
    Case("run/store-is-a-file", run_store_is_a_file, 1, ("labels.zarr", "got a regular file"), line=""),
    Case(
        "run/store-under-a-file", store_under_a_file, 1, ("notes.txt", "Not a directory (ENOTDIR)"), line=""
    ),
    Case("import/read-only-store", import_read_only, 2, ("store.zarr", "Read-only file system (EROFS)")),
    # --- item 8 ---------------------------------------------------------------------------------
    Case(
        "inspect/empty-after-failed-video",
        inspect_empty_after_failure,
        0,
        ("fresh.zarr: no video labelled yet", "failed before its first frame"),
        line="",
    ),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, synth_root: Path, small_model_config) -> World:
    template = labelled_template(tmp_path_factory, synth_root, small_model_config)
    root = tmp_path_factory.mktemp("careless-use")
    larger = small_model_config.model_copy(update={"seed": 3, "name": "larger"})
    bigger = PolicyConfig(
        rules=[PolicyRule(name="bigger", score="model_gap", op=">", threshold=-1.0, route="model")],
        model_refinement=ModelRefinement(model=larger),
    )
    refinable = root / "refinable.zarr"
    with one_torch_thread():
        [result] = label_dataset(make_run_config(synth_root, refinable, [VIDEO], small_model_config, bigger))
    assert result.queued_refine > 0
    report = root / "report"
    assert cli("report", template, "--out", report, "--no-jf").code == 0
    return World(synth_root, template, refinable, report, small_model_config)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_careless_use_gets_one_clear_line_and_changes_nothing(
    case: Case, world: World, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if case.id.startswith(("refine/", "run-cli/")) and case.line:  # these start a Prefect flow
        request.getfixturevalue("prefect_harness")
    trial = case.build(world, tmp_path)
    before = [digest(p) for p in trial.watched]
    outcome = trial.act()
    assert outcome.code == case.code, outcome.text
    assert "Traceback" not in outcome.text
    lines = [ln for ln in outcome.text.splitlines() if ln.startswith(case.line)]
    assert any(all(part in ln for part in case.parts) for ln in lines), (
        f"no line starting {case.line!r} names all of {case.parts}:\n{outcome.text}"
    )
    assert [digest(p) for p in trial.watched] == before, "a refused operation changed a watched folder"
    if trial.then is not None:
        trial.then(outcome)


def test_the_table_holds_every_case_of_the_issue() -> None:
    ids = {c.id for c in CASES}
    assert len(ids) == len(CASES)
    for needed in (
        "report/into-user-folder",  # item 3
        "run/into-user-folder",  # item 4
        "run/into-another-zarr-group",
        "doctor/foreign-folder",
        "run/over-damaged-video",
        "refine/read-only-store",  # item 5
        "refine/damaged-masks-chunk",
        "inspect/store-is-a-file",  # item 6
        "import/read-only-store",
        "report/read-only-folder",
        "run/disk-full",
        "inspect/empty-after-failed-video",  # item 8
    ):
        assert needed in ids, needed
    own = {
        "report/over-edited-report",
        "report/forced-into-user-folder",
        "report/out-is-a-file",
        "report/into-the-store",
        "report/disk-full-keeps-earlier",
        "run/store-under-a-file",
        "refine/not-a-directory",
    }
    assert own <= ids  # five (and more) careless cases of our own


def test_a_skipped_video_says_why_in_the_flow_summary(world: World, tmp_path: Path) -> None:
    """Item 9: the flow's summary artifact said only ``skipped``."""
    from flows.pseudo_label import summary_table

    store = store_copy(world, tmp_path)
    with one_torch_thread():
        [result] = label_dataset(world.run(store))
    assert result.outcome == "skipped"
    assert summary_table([result])[0]["error"] == "already complete under this config"


@pytest.mark.parametrize(("low", "words"), [([4], "a low run of 1 frame (4-4)"), ([4, 5, 6], "of 3 frames")])
def test_plurals_of_one(low: list[int], words: str) -> None:
    """Item 9: "a run of 1 frames" (and "1 objects" on a report page, the same expression)."""
    from usam_video.review.planner import PlannerSettings, Track, plan_reviews

    uncertainty = np.array([0.9 if t in low else 0.1 for t in range(10)])
    track = Track("v", 1, np.arange(10), uncertainty, np.arange(10) > 0)
    [pick] = plan_reviews([track], 1, PlannerSettings(threshold=0.5, skip_after=0))
    assert words in pick.reason


def test_error_text_is_never_turned_into_emoji() -> None:
    """Item 9: Rich turned ":100:" in decord's error text into an emoji."""
    from usam_video.cli.app import console, err_console

    for c in (console, err_console):
        with c.capture() as captured:
            c.print("frame 3 :100: broken")
        assert ":100:" in captured.get()


def test_random_weight_warnings_are_left_to_the_flow() -> None:
    """Item 9: ``run`` printed the random-weight warnings, then the flow logged them again."""
    import importlib
    import inspect as source

    main = importlib.import_module("usam_video.cli.main")  # the package's main() shadows it
    assert "untrained_warnings" not in source.getsource(main.run)


def test_refine_result_of_a_failure_has_no_negative_count() -> None:
    from usam_video.pipeline import RefineResult

    failed = RefineResult("v", 0, 0, "", error="StoreWriteError: ...")
    assert failed.failed and failed.left_queued == 0
    assert np.all([not RefineResult("v", 1, 0, "m").failed])
