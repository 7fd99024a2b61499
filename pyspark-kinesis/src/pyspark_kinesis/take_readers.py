"""Which way a task reads its take of a shard: the one seam for another way of reading one.

A batch's plan says, per shard, where it starts and what it takes (`Take`); a
task reads that with a `reading.TakeReader`, built by the stream reader's
`_read_shard` from the class `take_reader_for` picks for the query's options:
GetRecords (`reading.TakeRead`) or an enhanced fan-out subscription, held by
the host's hub and read through it (`fan_out_hub.HubTake`). Planning, notes
(`ends`) and replays are the same for every way, as long as it returns exactly
the records its take covers and sets `end`. A new way is a `TakeReader`
subclass, picked here.
"""

from __future__ import annotations

from pyspark_kinesis.fan_out_hub import HubTake
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.reading import TakeRead, TakeReader


def take_reader_for(options: KinesisOptions) -> type[TakeReader]:
    """How the query's tasks read their takes: from the shard's subscription, through the
    host's hub, under enhanced fan-out; else with GetRecords. Both yield the same records."""
    return HubTake if options.fan_out else TakeRead
