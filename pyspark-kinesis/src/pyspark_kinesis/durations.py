"""Durations as the library's options and the stack's settings spell them: one parser.

`200ms`, `2s`, `2 seconds`, `500 milliseconds`, `1m`, `1 minute`, `1h`, `1 hour`;
a bare number is seconds where the caller allows it. Each caller says what it
accepts in its own error, naming its own option or variable.
"""

from __future__ import annotations

import re

SECONDS_PER_UNIT = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "sec", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hour", "hours"), 3600.0),
}
# Longest first, so that `ms` is not read as `m` followed by garbage.
_UNITS = "|".join(sorted(SECONDS_PER_UNIT, key=len, reverse=True))
_DURATION = re.compile(rf"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>{_UNITS})?\s*$", re.IGNORECASE)


def duration_s(text: str, *, unit_required: bool = False) -> float | None:
    """Seconds in `text`, or None when it is not a duration (or has no unit and needs one)."""
    match = _DURATION.match(text)
    if match is None or (unit_required and match["unit"] is None):
        return None
    return float(match["value"]) * SECONDS_PER_UNIT[(match["unit"] or "s").lower()]
