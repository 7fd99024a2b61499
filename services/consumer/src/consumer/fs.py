"""The few file operations the sink needs, on a local path or a URI such as s3://bucket/out.

pyarrow's file systems do the work, so the driver and the executors reach the
same storage that Spark's checkpoint lives on without Hadoop in Python.
Writes are atomic for readers: a local file is written under a hidden name and
renamed; an object store shows an object only once its upload completes.
"""

from __future__ import annotations

import contextlib
import uuid
from functools import cache

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs


@cache
def _filesystem(root: str) -> fs.FileSystem:
    filesystem, _ = fs.FileSystem.from_uri(root)
    return filesystem


def _resolve(path: str) -> tuple[fs.FileSystem, str]:
    if "://" not in path:
        return _filesystem("/"), path
    scheme, rest = path.split("://", 1)
    bucket = rest.split("/", 1)[0]
    return _filesystem(f"{scheme}://{bucket}"), rest


def read_text(path: str) -> str | None:
    filesystem, where = _resolve(path)
    try:
        with filesystem.open_input_stream(where) as stream:
            return bytes(stream.read()).decode()
    except FileNotFoundError:
        return None


def write_text(path: str, text: str) -> None:
    filesystem, where = _resolve(path)
    folder, name = where.rsplit("/", 1)
    filesystem.create_dir(folder, recursive=True)
    partial = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    with filesystem.open_output_stream(partial) as stream:
        stream.write(text.encode())
    filesystem.move(partial, where)


def write_parquet(table: pa.Table, path: str) -> None:
    """Writes `table` to `path` whole: a second writer of the same path never mixes with it."""
    filesystem, where = _resolve(path)
    folder, name = where.rsplit("/", 1)
    filesystem.create_dir(folder, recursive=True)
    partial = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    pq.write_table(table, partial, filesystem=filesystem)
    filesystem.move(partial, where)


def read_parquet(paths: list[str], columns: list[str] | None = None) -> pa.Table:
    filesystem, _ = _resolve(paths[0])
    # No partitioning: the files carry every column, the `hour=` folder adds none.
    files = [_resolve(path)[1] for path in paths]
    dataset = ds.dataset(files, format="parquet", filesystem=filesystem)
    return dataset.to_table(columns=columns)


def move(source: str, target: str) -> None:
    filesystem, where = _resolve(source)
    filesystem.move(where, _resolve(target)[1])


def names_in(folder: str) -> list[str]:
    """The names of the files directly in `folder`; none if it does not exist."""
    filesystem, where = _resolve(folder)
    selector = fs.FileSelector(where, allow_not_found=True)
    return [info.base_name for info in filesystem.get_file_info(selector)]


def subfolders(folder: str) -> list[str]:
    filesystem, where = _resolve(folder)
    selector = fs.FileSelector(where, allow_not_found=True)
    return sorted(
        info.base_name
        for info in filesystem.get_file_info(selector)
        if info.type == fs.FileType.Directory
    )


def delete(path: str) -> None:
    filesystem, where = _resolve(path)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_file(where)
