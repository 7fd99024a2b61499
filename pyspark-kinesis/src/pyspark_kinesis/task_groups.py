"""Which shards one Spark task reads: `shardsPerTask` of a batch's shards, in order.

A task reads its shards at once (`task_reading`), each at its own pace, so a
batch's tasks are few: ceil(shards with records / shardsPerTask). The shards
are cut in the order given into runs whose sizes differ by at most one, so no
task waits on a longer run than it must. A batch runs in one wave of tasks
while its shards with records are at most `shardsPerTask` per task slot.
Plain functions, no Spark.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def task_groups(items: Sequence[T], shards_per_task: int) -> list[list[T]]:
    """`items` in order, cut into as few runs of at most `shards_per_task` as there can be,
    their sizes within one of each other (the longer runs first)."""
    if shards_per_task < 1:
        raise ValueError(f"shards_per_task must be at least 1, not {shards_per_task}")
    if not items:
        return []
    count = -(-len(items) // shards_per_task)
    size, longer = divmod(len(items), count)
    groups: list[list[T]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < longer else 0)
        groups.append(list(items[start:end]))
        start = end
    return groups


def waits_in_group(
    group: Sequence[K], parents: Mapping[K, Sequence[K]]
) -> tuple[tuple[int, ...], ...]:
    """For each shard of `group`, the positions of the group's shards it descends from
    directly (`parents`), which its read must wait for: a child is read after its parents."""
    position = {shard: index for index, shard in enumerate(group)}
    return tuple(
        tuple(position[parent] for parent in parents.get(shard, ()) if parent in position)
        for shard in group
    )
