"""Durations as the library's options and the stack's settings spell them: one parser.

Each caller names the units it accepts (the options: `200ms`, `2s`, `1m`; the
consumer's settings, as Spark spells a trigger: `500 milliseconds`, `1 hour`),
and says what it accepts in its own error, naming its own option or variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# The options' units: a bare number is seconds.
OPTION_UNITS: Mapping[str, float] = {
    "ms": 0.001,
    **dict.fromkeys(("s", "sec", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60.0),
}
# Spark's interval units, as the consumer's trigger interval and dedup window take them.
SPARK_UNITS: Mapping[str, float] = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "second", "seconds"), 1.0),
    **dict.fromkeys(("min", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hour", "hours"), 3600.0),
}
_NUMBER = r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)\s*$"


def duration_s(
    text: str, units: Mapping[str, float], *, unit_required: bool = False, whole: bool = False
) -> float | None:
    """Seconds in `text`, or None when it is not a duration in `units` (or has no unit where
    one is required, or a fraction where a whole number is)."""
    match = re.match(_NUMBER, text.lower())
    if match is None or (whole and "." in match["value"]):
        return None
    unit = match["unit"]
    if not unit:
        return None if unit_required else float(match["value"])
    return float(match["value"]) * units[unit] if unit in units else None
