"""The consumer's log reads like the tutorial's console: its own lines, not its libraries'."""

from __future__ import annotations

import logging

import pytest
from consumer.log_setup import THIRD_PARTY_LOGGERS, configure_logging

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _restore_logging():
    saved = {name: logging.getLogger(name).level for name in ("", *THIRD_PARTY_LOGGERS)}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_py4j_chatter_between_batches_is_not_logged_at_info():
    configure_logging("INFO")
    # py4j's callback server logs each call from the JVM ("Received command c on object id p0").
    assert not logging.getLogger("py4j.clientserver").isEnabledFor(logging.INFO)
    assert logging.getLogger("consumer.sink").isEnabledFor(logging.INFO)


@pytest.mark.parametrize("library", ["py4j.java_gateway", "botocore.credentials", "urllib3"])
def test_libraries_stay_at_warning_even_when_the_consumer_logs_debug(library):
    configure_logging("DEBUG")
    assert not logging.getLogger(library).isEnabledFor(logging.INFO)
    assert logging.getLogger(library).isEnabledFor(logging.WARNING)
    assert logging.getLogger("consumer").isEnabledFor(logging.DEBUG)
