"""Where a new query starts: every starting-position syntax the three peers document.

- plain: `TRIM_HORIZON` (or `EARLIEST`), `LATEST`, `AT_TIMESTAMP` with
  `startingTimestamp`, `AT_TIMESTAMP:<time>`, `AT_SEQUENCE_NUMBER:<n>`,
  `AFTER_SEQUENCE_NUMBER:<n>`;
- the AWS connector's `AT_TIMESTAMP 2023-08-30T19:00:05Z` (a space, ISO-8601 with a zone);
- Databricks' `{"at_timestamp": "06/25/2020 10:23:45 PDT", "format": "MM/dd/yyyy HH:mm:ss ZZZ"}`
  (the format a Java date pattern; without one, Databricks' default, that same pattern);
- per shard, qubole's and the AWS connector's offset JSON
  (`{"shardId-...": {"iteratorType": ..., "iteratorPosition": ...}, "metadata": {...}}`,
  `AT_TIMESTAMP` positions in epoch milliseconds, shards not named start at `LATEST` as
  there), and ours (`{"shardId-...": "AFTER_SEQUENCE_NUMBER:...", "*": "TRIM_HORIZON"}`).

Design decision: every syntax becomes the same `Position` values, so nothing past this
module knows which dialect a user wrote.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pyspark_kinesis.positions import Position, after, parse_position


class StartingPositionError(ValueError):
    """The starting position cannot be understood; the message says which forms are accepted."""


@dataclass(frozen=True)
class StartingPositions:
    """A position for the shards not named, and one for each shard that is."""

    default: Position
    per_shard: dict[str, Position]


# Fields of the peers' per-shard offset JSON.
_ITERATOR_TYPE, _ITERATOR_POSITION = "iteratorType", "iteratorPosition"
_SUB_SEQUENCE, _IS_LAST = "subSequenceNumber", "isLast"
_METADATA = "metadata"
# The peers' value for "no sub-sequence number": the position names a whole Kinesis record.
_WHOLE_RECORD = -1


def parse_starting_positions(raw: str, timestamp: str | None) -> StartingPositions:
    """Parses a starting-position option's value (`timestamp`: `startingTimestamp`, if set)."""
    text = raw.strip()
    if not text.startswith("{"):
        return StartingPositions(_single_position(text, timestamp, "startingPosition"), {})
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise StartingPositionError(f"startingPosition is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise StartingPositionError("startingPosition JSON must be an object")
    if "at_timestamp" in document:
        return StartingPositions(_databricks_at_timestamp(document), {})
    if any(isinstance(value, dict) for value in document.values()):
        return _offset_json_positions(document)
    default = _single_position(
        str(document.pop("*", "TRIM_HORIZON")), timestamp, "startingPosition"
    )
    per_shard = {
        shard_id: _single_position(str(value), timestamp, f"startingPosition[{shard_id}]")
        for shard_id, value in document.items()
    }
    return StartingPositions(default, per_shard)


def _single_position(raw: str, timestamp: str | None, option: str) -> Position:
    # `KIND:argument` is ours; the AWS connector separates with a space.
    match = re.match(r"^\s*(?P<kind>[A-Za-z_]+)\s*(?:[:\s]\s*(?P<argument>.*?))?\s*$", raw)
    kind = (match["kind"] if match else raw).upper()
    argument = match["argument"] if match else None
    if kind == "AT_TIMESTAMP":
        time_text = argument or timestamp
        if not time_text:
            raise StartingPositionError(
                f"{option} AT_TIMESTAMP needs a time: set startingTimestamp "
                "(ISO-8601 or epoch seconds) or write AT_TIMESTAMP:<time>"
            )
        raw = f"AT_TIMESTAMP:{epoch_seconds(time_text)}"
    elif match and argument:
        raw = f"{kind}:{argument}"
    try:
        return parse_position(raw)
    except ValueError as error:
        raise StartingPositionError(
            f"{option}: {error}, or AT_TIMESTAMP <ISO-8601 time with a zone>"
        ) from error


def epoch_seconds(text: str) -> float:
    """Epoch seconds from epoch seconds or ISO-8601 (a time without a zone is UTC)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise StartingPositionError(
            f"starting time {text!r} is neither epoch seconds nor ISO-8601"
        ) from error
    # A time without a zone is UTC: the same query starts at the same instant on any host.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# What Databricks reads an `at_timestamp` by when its `format` is missing.
DATABRICKS_DEFAULT_FORMAT = "MM/dd/yyyy HH:mm:ss ZZZ"


def _databricks_at_timestamp(document: dict[str, Any]) -> Position:
    time_text, pattern = str(document["at_timestamp"]), document.get("format")
    if pattern is None:
        return Position("AT_TIMESTAMP", repr(databricks_default_time(time_text)))
    return Position("AT_TIMESTAMP", repr(java_pattern_time(time_text, str(pattern)).timestamp()))


def databricks_default_time(text: str) -> float:
    """Epoch seconds of an `at_timestamp` given without `format`.

    Databricks' default pattern first (`06/25/2020 10:23:45 PDT`); what this source took
    before it knew that default, epoch seconds or ISO-8601, still works.
    """
    try:
        return java_pattern_time(text, DATABRICKS_DEFAULT_FORMAT).timestamp()
    except StartingPositionError as pattern_error:
        try:
            return epoch_seconds(text)
        except StartingPositionError:
            raise StartingPositionError(
                f"{pattern_error}, Databricks' default when at_timestamp has no format; "
                "give its format (a Java date pattern), or write epoch seconds or ISO-8601"
            ) from pattern_error


def _offset_json_positions(document: dict[str, Any]) -> StartingPositions:
    """qubole's and the AWS connector's offset JSON: one object per shard, plus metadata."""
    per_shard: dict[str, Position] = {}
    for shard_id, entry in document.items():
        if shard_id == _METADATA:
            continue  # batch id and stream name of the query that wrote it: nothing to start from
        if not isinstance(entry, dict) or _ITERATOR_TYPE not in entry:
            raise StartingPositionError(
                f"startingPosition[{shard_id}] must be an object with iteratorType and "
                f"iteratorPosition, as in the other shards' entries, not {entry!r}"
            )
        per_shard[shard_id] = _offset_json_position(shard_id, entry)
    # Both peers start the shards their JSON does not name at the query's start.
    return StartingPositions(Position("LATEST"), per_shard)


def _offset_json_position(shard_id: str, entry: dict[str, Any]) -> Position:
    kind = str(entry[_ITERATOR_TYPE]).strip().upper()
    argument = str(entry.get(_ITERATOR_POSITION, "")).strip()
    option = f"startingPosition[{shard_id}]"
    if kind == "AT_TIMESTAMP":
        try:
            return Position("AT_TIMESTAMP", repr(int(argument) / 1000))  # epoch milliseconds
        except ValueError as error:
            raise StartingPositionError(
                f"{option}: AT_TIMESTAMP's iteratorPosition is epoch milliseconds, not {argument!r}"
            ) from error
    sub_sequence = int(entry.get(_SUB_SEQUENCE, _WHOLE_RECORD))
    is_last = str(entry.get(_IS_LAST, "false")).strip().lower() == "true"
    if argument.isdigit() and sub_sequence != _WHOLE_RECORD and not is_last:
        # Inside a KPL aggregate: after user record `sub_sequence`, or at it.
        if kind == "AFTER_SEQUENCE_NUMBER":
            return after(argument, sub_sequence)
        if kind == "AT_SEQUENCE_NUMBER" and sub_sequence > 0:
            return after(argument, sub_sequence - 1)
    text = f"{kind}:{argument}" if argument else kind
    try:
        return parse_position(text)
    except ValueError as error:
        raise StartingPositionError(f"{option}: {error}") from error


# Zone names a Databricks `at_timestamp` may carry: Java parses them by name, Python cannot.
_ZONE_OFFSETS_H = {
    "UTC": 0, "GMT": 0, "Z": 0,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3,
}  # fmt: skip
# Java date-pattern letters -> the regular expression their text matches.
_FIELDS = {
    "y": r"\d{4}|\d{2}", "M": r"\d{1,2}", "d": r"\d{1,2}", "H": r"\d{1,2}", "h": r"\d{1,2}",
    "m": r"\d{1,2}", "s": r"\d{1,2}", "S": r"\d{1,9}", "a": r"AM|PM|am|pm",
    "z": r"[A-Za-z]+|[+-]\d{2}:?\d{2}", "Z": r"[A-Za-z]+|[+-]\d{2}:?\d{2}",
    "X": r"Z|[+-]\d{2}(?::?\d{2})?",
}  # fmt: skip
_PATTERN_TOKEN = re.compile(r"'([^']*)'|([A-Za-z])\2*|(.)")


def java_pattern_time(text: str, pattern: str) -> datetime:
    """Parses `text` by a Java date pattern such as `MM/dd/yyyy HH:mm:ss ZZZ`.

    Supports the letters y M d H h m s S a and the zones z Z X (a name from a short list,
    or an offset); a time without a zone is UTC.
    """
    regex, letters = [], []
    for match in _PATTERN_TOKEN.finditer(pattern):
        literal, letter, other = match.group(1), match.group(2), match.group(3)
        if letter and letter in _FIELDS:
            letters.append(letter)
            regex.append(f"({_FIELDS[letter]})")
        elif letter:
            raise StartingPositionError(
                f"at_timestamp format {pattern!r} uses {letter!r}; supported letters: "
                + " ".join(_FIELDS)
            )
        else:
            regex.append(re.escape(literal if literal is not None else other))
    parsed = re.fullmatch("".join(regex), text.strip())
    if parsed is None:
        raise StartingPositionError(f"at_timestamp {text!r} does not match format {pattern!r}")
    fields = dict(zip(letters, parsed.groups(), strict=True))
    return _assemble(fields, text)


def _assemble(fields: dict[str, str], text: str) -> datetime:
    year = int(fields.get("y", "1970"))
    hour = int(fields.get("H", fields.get("h", "0")))
    if fields.get("a", "").upper() == "PM" and hour < 12:
        hour += 12
    elif fields.get("a", "").upper() == "AM" and hour == 12:
        hour = 0
    fraction = fields.get("S", "0")
    return datetime(
        year + 2000 if year < 100 else year,
        int(fields.get("M", "1")),
        int(fields.get("d", "1")),
        hour,
        int(fields.get("m", "0")),
        int(fields.get("s", "0")),
        int(fraction.ljust(6, "0")[:6]),
        tzinfo=_zone(fields.get("z") or fields.get("Z") or fields.get("X"), text),
    )


def _zone(name: str | None, text: str) -> timezone:
    if name is None:
        return UTC
    if name[0] in "+-":
        sign = -1 if name[0] == "-" else 1
        digits = name[1:].replace(":", "").ljust(4, "0")
        return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    if name.upper() not in _ZONE_OFFSETS_H:
        raise StartingPositionError(
            f"at_timestamp {text!r}: unknown zone {name!r}; write an offset such as -07:00, "
            f"or one of {', '.join(_ZONE_OFFSETS_H)}"
        )
    return timezone(timedelta(hours=_ZONE_OFFSETS_H[name.upper()]))
