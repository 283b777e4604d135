"""A run that skips a video says by whom (issue #18, see tests/bad_input_helpers.py)."""

from __future__ import annotations

from pathlib import Path

from tests.bad_input_helpers import Case, Outcome, Trial, World, table_test
from tests.conftest import make_run_config
from tests.review.helpers import one_torch_thread
from usam_video.pipeline import label_dataset
from usam_video.store import PseudoLabelStore


def claimed_by_another_run(world: World, tmp: Path) -> Trial:
    """Issue item 6: a video claimed by another live run was reported "skipped" without by whom."""
    store = tmp / "claimed.zarr"
    PseudoLabelStore.open(store).claim("synth-000", owner="other-host:4242:1")  # our pid: alive
    run = make_run_config(world.synth_root, store, ["synth-000"], world.small_model_config)

    def act() -> Outcome:
        from usam_video.cli.main import console, print_results

        with one_torch_thread():
            results = label_dataset(run)
        with console.capture() as captured:
            print_results(results)
        return Outcome(0, captured.get())

    return Trial(store, act)


CASES: list[Case] = [
    # --- runs that skip a video say by whom ----------------------------------------------------
    Case(
        "skipped-says-by-whom", claimed_by_another_run, 0, ("skipped (being labelled by other-host:4242:1)",)
    ),
]


test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical = table_test(CASES)
