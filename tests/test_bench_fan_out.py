"""The bench's pure pieces behind figures 15 and 16: task slots, reader options, the split
of an event's latency, the share of the scaled limit. No Spark, no emulator."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from consumer.layout import EVENTS, hour_folder, part_name
from consumer.writing import EVENT_SCHEMA

from bench.drain import LIMIT_BYTES_PER_S, SCALED, share_of_limit
from bench.fan_out import reader_options, tasks_at_once
from bench.latency import Sighting, SinkWatcher, batch_starts, stretches

pytestmark = pytest.mark.unit


def test_each_reader_needs_a_slot_per_task_of_its_shards():
    assert tasks_at_once(2, 4, 4) == 2
    assert tasks_at_once(2, 4, 3) == 4
    assert tasks_at_once(2, 4, 1) == 8


def test_fan_out_readers_are_consumers_of_their_own_and_polling_readers_are_not():
    polling, fan_out = reader_options("polling", "reader-a"), reader_options("fan-out", "reader-a")
    assert "consumerMode" not in polling
    assert fan_out["consumerMode"] == "efo"
    assert fan_out["consumerName"] == "reader-a"
    # Both read under figure 10's scaled options.
    assert polling.items() >= SCALED.items()
    assert fan_out.items() >= SCALED.items()


def test_a_read_at_the_limit_is_1x():
    assert share_of_limit(LIMIT_BYTES_PER_S * 10, 10.0) == pytest.approx(1.0)
    assert share_of_limit(LIMIT_BYTES_PER_S * 10, 20.0) == pytest.approx(0.5)


def test_batch_starts_are_the_progress_timestamps_by_batch():
    progress = [
        {"batchId": 4, "timestamp": "2026-12-07T13:00:00.250Z", "numInputRows": 3},
        # An idle trigger names the batch to come; that batch's own trigger is its start.
        {"batchId": 5, "timestamp": "2026-12-07T13:00:00.500Z", "numInputRows": 0},
        {"batchId": 5, "timestamp": "2026-12-07T13:00:00.750Z", "numInputRows": 2},
        {"batchId": 6, "timestamp": "2026-12-07T13:00:01.250Z", "numInputRows": 0},
    ]
    start = datetime(2026, 12, 7, 13, tzinfo=UTC).timestamp()
    assert batch_starts(progress) == {4: start + 0.25, 5: start + 0.75}


def test_an_events_latency_splits_into_its_way_to_kinesis_to_its_batch_and_to_the_sink():
    sightings = [
        Sighting(event_s=10.0, arrival_s=10.1, batch=1, seen_s=11.0),
        Sighting(event_s=10.2, arrival_s=10.3, batch=1, seen_s=11.0),
        # A batch with no progress report counts only on its way to Kinesis.
        Sighting(event_s=10.4, arrival_s=10.5, batch=9, seen_s=12.0),
    ]
    split = stretches(sightings, {1: 10.5})
    assert split["to_kinesis"] == pytest.approx(0.1)
    assert split["to_batch"] == pytest.approx(0.4)  # the upper median of 0.4 and 0.2
    assert split["batch_to_sink"] == pytest.approx(0.5)
    assert sightings[0].latency_s == pytest.approx(1.0)


def test_no_sightings_have_no_stretches():
    assert stretches([], {}) == {"to_kinesis": None, "to_batch": None, "batch_to_sink": None}


def test_the_watcher_reads_each_events_times_and_batch_from_a_published_part(tmp_path: Path):
    event = datetime(2026, 12, 7, 13, 0, 0, tzinfo=UTC)
    arrival = datetime(2026, 12, 7, 13, 0, 0, 200_000, tzinfo=UTC)
    row = {field.name: None for field in EVENT_SCHEMA}
    row |= {"event_time": event, "arrival_time": arrival, "batch_id": 7}
    folder = Path(hour_folder(str(tmp_path / EVENTS), "2026-12-07T13"))
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row], schema=EVENT_SCHEMA), folder / part_name(7, 0))
    watcher = SinkWatcher(tmp_path / EVENTS)
    before = time.time()
    watcher.poll()
    watcher.poll()  # a part is read once
    [sighting] = watcher.sightings
    assert (sighting.event_s, sighting.arrival_s) == (event.timestamp(), arrival.timestamp())
    assert sighting.batch == 7
    assert before <= sighting.seen_s <= time.time()
