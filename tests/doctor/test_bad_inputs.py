"""A damaged store seen by ``doctor`` (issue #18): it names the array and points at ``verify``
(see tests/bad_input_helpers.py)."""

from __future__ import annotations

from tests.bad_input_helpers import SCORES, Case, damaged, table_test
from tests.review.helpers import VIDEO

CASES: list[Case] = [
    Case(
        "doctor/damaged-store",
        lambda w, t: damaged(w, t, SCORES, "doctor", "--store", "{store}"),
        1,
        ("store", "DAMAGED", f"videos/{VIDEO}/scores", "usam-video verify"),
    ),
]


test_bad_input_gets_a_clear_error_and_the_store_stays_byte_identical = table_test(CASES)
