"""Several shards to a task (`shardsPerTask`): the grouping and the reads at once, as plain
functions (no Spark, no Kinesis)."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator

import pytest
from pyspark_kinesis.options import DEFAULT_SHARDS_PER_TASK, KinesisOptionError, KinesisOptions
from pyspark_kinesis.partitions import ShardBatch, ShardGroup, shard_groups
from pyspark_kinesis.positions import TRIM_HORIZON, after
from pyspark_kinesis.shards import StreamShard, Take
from pyspark_kinesis.task_groups import task_groups, waits_in_group
from pyspark_kinesis.task_reading import read_at_once

pytestmark = pytest.mark.unit

# Long enough for any thread of a test to start; a read run alone never gets there.
RENDEZVOUS_S = 10.0


def sizes(groups: list[list[int]]) -> list[int]:
    return [len(group) for group in groups]


def test_shards_are_cut_in_order_into_as_few_tasks_as_shards_per_task_allows() -> None:
    groups = task_groups(list(range(10)), 4)
    assert sizes(groups) == [4, 3, 3]  # not 4, 4, 2: no task waits on a longer run than needed
    assert [n for group in groups for n in group] == list(range(10))


@pytest.mark.parametrize(
    ("shards", "per_task", "expected"),
    [(16, 8, [8, 8]), (4, 8, [4]), (3, 1, [1, 1, 1]), (64, 8, [8] * 8), (0, 5, [])],
)
def test_task_count_is_shards_over_shards_per_task_rounded_up(
    shards: int, per_task: int, expected: list[int]
) -> None:
    assert sizes(task_groups(list(range(shards)), per_task)) == expected


def test_a_shards_per_task_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        task_groups([1], 0)


def test_a_child_waits_for_its_parents_in_its_own_task_only() -> None:
    # P split into A and B, which merged into C; X is a parent in another task.
    parents = {"A": ["P"], "B": ["P"], "C": ["A", "B"], "Y": ["X"]}
    assert waits_in_group(["P", "A", "B", "C", "Y"], parents) == ((), (0,), (0,), (1, 2), ())


def test_shards_per_task_is_an_option_with_a_default() -> None:
    assert KinesisOptions.parse({"streamName": "s"}).shards_per_task == DEFAULT_SHARDS_PER_TASK
    assert KinesisOptions.parse({"streamName": "s", "ShardsPerTask": "3"}).shards_per_task == 3
    with pytest.raises(KinesisOptionError, match="shardsPerTask must be a whole number"):
        KinesisOptions.parse({"streamName": "s", "shardsPerTask": "0"})


def test_a_task_partition_pickles_as_plain_data() -> None:
    batches = [
        ShardBatch(StreamShard("orders", f"shardId-00000000000{n}"), TRIM_HORIZON, Take(1.5, 10))
        for n in range(3)
    ]
    batches.append(ShardBatch(StreamShard("payments", "shardId-0"), after("7", 2), Take(2.0), 3.0))
    parents = {batches[1].shard: [batches[0].shard]}
    (first, second) = shard_groups(batches, 2, parents)
    assert (first.after, second.after) == (((), (0,)), ((), ()))
    copy = pickle.loads(pickle.dumps(second))
    assert isinstance(copy, ShardGroup)
    assert (copy.batches, copy.after) == (second.batches, second.after)


def test_a_tasks_reads_run_at_once() -> None:
    # Each read waits at the barrier for the others: read one after another, none passes it.
    barrier = threading.Barrier(3, timeout=RENDEZVOUS_S)

    def read(name: str) -> Iterator[str]:
        yield f"{name}-1"
        barrier.wait()
        yield f"{name}-2"

    chunks = list(read_at_once([lambda: read("a"), lambda: read("b"), lambda: read("c")]))
    assert sorted(chunks) == ["a-1", "a-2", "b-1", "b-2", "c-1", "c-2"]
    for name in "abc":  # each read's chunks in its own order
        assert chunks.index(f"{name}-1") < chunks.index(f"{name}-2")


def test_a_read_waits_for_the_reads_it_comes_after() -> None:
    child_started = threading.Event()

    def parent() -> Iterator[str]:
        for n in range(3):
            assert not child_started.is_set()
            yield f"parent-{n}"

    def child() -> Iterator[str]:
        child_started.set()
        yield "child"

    other = iter(["other"])
    chunks = list(read_at_once([parent, child, lambda: other], after=[(), (0,), ()]))
    assert [c for c in chunks if c != "other"] == ["parent-0", "parent-1", "parent-2", "child"]
    assert "other" in chunks


def test_a_failed_read_fails_the_task_and_stops_its_children() -> None:
    child_read = threading.Event()

    def failing() -> Iterator[str]:
        yield "before"
        raise RuntimeError("shard gone")

    def child() -> Iterator[str]:
        child_read.set()
        yield "child"

    with pytest.raises(RuntimeError, match="shard gone"):
        list(read_at_once([failing, child], after=[(), (0,)]))
    assert not child_read.is_set()


def test_a_task_of_one_shard_reads_it_in_the_tasks_own_thread() -> None:
    def read() -> Iterator[str]:
        yield threading.current_thread().name

    assert list(read_at_once([read])) == [threading.current_thread().name]
