"""Review tests: torch on one thread while they run (see helpers.one_torch_thread)."""

import pytest

from tests.review.helpers import one_torch_thread


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield
