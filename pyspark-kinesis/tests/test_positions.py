"""Positions: the text form is the checkpoint format, and each becomes a GetShardIterator call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after, at_timestamp, parse_position

pytestmark = pytest.mark.unit

SEQUENCE = "49590338271490256608559692538361571095921575989136588898"


@pytest.mark.parametrize(
    "text",
    [
        "TRIM_HORIZON",
        "LATEST",
        f"AT_SEQUENCE_NUMBER:{SEQUENCE}",
        f"AFTER_SEQUENCE_NUMBER:{SEQUENCE}",
        "AT_TIMESTAMP:1704067200.0",
        "AT_TIMESTAMP:1704067200.123456",
    ],
)
def test_text_form_round_trips(text: str) -> None:
    assert str(parse_position(text)) == text


@pytest.mark.parametrize(
    "position",
    [TRIM_HORIZON, after(SEQUENCE), at_timestamp(1704067200.987654321), at_timestamp(0)],
)
def test_position_survives_its_text_form(position: Position) -> None:
    assert parse_position(str(position)) == position


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("earliest", TRIM_HORIZON),
        (" trim_horizon ", TRIM_HORIZON),
        ("latest", Position("LATEST")),
        (f"after_sequence_number: {SEQUENCE}", after(SEQUENCE)),
        ("AT_TIMESTAMP:1704067200", at_timestamp(1704067200)),
    ],
)
def test_lenient_spellings(text: str, expected: Position) -> None:
    assert parse_position(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "OLDEST",
        "TRIM_HORIZON:5",
        "LATEST:now",
        "AT_SEQUENCE_NUMBER",
        "AT_SEQUENCE_NUMBER:49x",
        "AFTER_SEQUENCE_NUMBER:-1",
        "AT_TIMESTAMP",
        "AT_TIMESTAMP:noon",
        "AT_TIMESTAMP:nan",
        "AT_TIMESTAMP:inf",
    ],
)
def test_malformed_text_is_rejected_naming_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"TRIM_HORIZON.*AFTER_SEQUENCE_NUMBER"):
        parse_position(text)


def test_trim_horizon_request() -> None:
    assert TRIM_HORIZON.iterator_request() == {"ShardIteratorType": "TRIM_HORIZON"}


def test_latest_request() -> None:
    assert Position("LATEST").iterator_request() == {"ShardIteratorType": "LATEST"}


@pytest.mark.parametrize("kind", ["AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"])
def test_sequence_number_request(kind: str) -> None:
    assert Position(kind, SEQUENCE).iterator_request() == {
        "ShardIteratorType": kind,
        "StartingSequenceNumber": SEQUENCE,
    }


def test_timestamp_request_is_an_aware_utc_datetime() -> None:
    request = at_timestamp(1704067200.5).iterator_request()
    assert request == {
        "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": datetime(2024, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC),
    }
