"""The shared polling helper: what it returns, and how it fails."""

from __future__ import annotations

import pytest

from testkit.waiting import wait_until

pytestmark = pytest.mark.unit


def test_returns_the_first_truthy_answer():
    answers = iter([None, 0, [], "ready"])
    assert wait_until(lambda: next(answers), "a ready answer", deadline_s=5, poll_s=0) == "ready"


def test_fails_naming_what_it_waited_for_and_asks_once_after_the_deadline():
    asked = []
    with pytest.raises(AssertionError, match="waiting for the answer that never comes"):
        wait_until(lambda: asked.append(1), "the answer that never comes", deadline_s=0, poll_s=0)
    assert len(asked) == 1
