"""A damaged store seen by ``doctor`` (issue #18): it names the array and points at ``verify``
(see tests/bad_input_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_input_helpers import SCORES, Case, World, bad_input_world, check_case, damaged
from tests.review.helpers import VIDEO

CASES: list[Case] = [
    Case(
        "doctor/damaged-store",
        lambda w, t: damaged(w, t, SCORES, "doctor", "--store", "{store}"),
        1,
        ("store", "DAMAGED", f"videos/{VIDEO}/scores", "usam-video verify"),
    ),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, synth_root: Path, small_model_config) -> World:
    return bad_input_world(tmp_path_factory, synth_root, small_model_config)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical(
    case: Case, world: World, tmp_path: Path
) -> None:
    check_case(case, world, tmp_path)
