"""No silent wrong results: every damaged input or store of issue #18 is one row of one table.

The table is split by the package that must refuse the input, one ``test_bad_inputs.py`` per
test folder (datasets, config, review imports, store, doctor, pipeline), with the shared row
runner in tests/bad_input_helpers.py. This module checks that the tables, together, still hold
every case the issue names.
"""

from __future__ import annotations

from tests.config.test_bad_inputs import CASES as CONFIG_CASES
from tests.datasets.test_bad_inputs import CASES as DATASET_CASES
from tests.doctor.test_bad_inputs import CASES as DOCTOR_CASES
from tests.pipeline.test_bad_inputs import CASES as PIPELINE_CASES
from tests.review.test_bad_inputs import CASES as REVIEW_CASES
from tests.store.test_bad_inputs import CASES as STORE_CASES

CASES = [*DATASET_CASES, *CONFIG_CASES, *REVIEW_CASES, *STORE_CASES, *DOCTOR_CASES, *PIPELINE_CASES]


def test_the_table_holds_every_case_of_the_issue() -> None:
    """The measured cases, the six exceptions and the smaller items of issue #18, by row id."""
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids) >= 40
    for needed in (
        "sav-prompt-rle-counts-half",  # exception 1
        "config-unset-variable-in-store",  # exception 2
        "import-export-of-another-store",  # exception 3
        "status-chunk/inspect",  # exception 4 (and every read path after it)
        "mp4-broken-midway",  # item 6
        "skipped-says-by-whom",
        "import-xml-bomb",
        "import-xxe",
    ):
        assert needed in ids, needed
