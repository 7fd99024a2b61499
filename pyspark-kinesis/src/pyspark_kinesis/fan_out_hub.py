"""One process per host holds the fan-out subscriptions; every Python worker there reads through it.

Why a process of its own: Spark runs a shard's successive tasks in whichever of
an executor's Python workers is free, and AWS lets a consumer subscribe to a
shard once per 5 seconds. With a subscription held by the worker that opened
it, every batch whose task landed in another worker subscribed anew and waited
out that rule (measured in `make bench`: 27 of 35 SubscribeToShard calls refused
as in use, batches of 6 s under the default 500 ms trigger). So the first task
that reads with fan-out on a host starts the hub (`python -m
pyspark_kinesis.fan_out_hub`), and each task sends it its take (`HubTake`) over
a Unix socket in a directory only the user can enter. The hub reads the take
from its subscription (`subscriptions.SubscribedTake`: a subscription per
consumer and shard, its bounded buffer, its renewals) and sends the pages back.

The hub exits once no task has asked it anything for `subscriptions.IDLE_CLOSE_S`,
the time an unused subscription is kept anyway. Its log is `hub-<build>.log`
beside its socket. A hub of another build of this package (another socket name)
is never used, so an upgrade or a change of the source meets a hub of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from pyspark_kinesis.client import KinesisSourceError, make_client
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import Position
from pyspark_kinesis.reading import TakeReader
from pyspark_kinesis.shards import Take
from pyspark_kinesis.subscriptions import IDLE_CLOSE_S, SubscribedTake

log = logging.getLogger(__name__)

# How long a task waits for the hub it started to take calls.
HUB_START_PATIENCE_S = 30.0
_POLL_S = 0.05
# The longest path a Unix socket may have on Linux and macOS alike (sun_path less its NUL).
_LONGEST_SOCKET_PATH = 103


@dataclass(frozen=True)
class TakeRequest:
    """What a task asks the hub: a `SubscribedTake`'s arguments."""

    options: KinesisOptions
    shard_id: str
    start: Position
    take: Take
    not_before_s: float


def hub_directory() -> Path:
    """The user's own directory for the hub's socket, lock and log (mode 0700)."""
    directory = Path(tempfile.gettempdir()) / f"pyspark-kinesis-fan-out-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    status = directory.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise KinesisSourceError(
            f"{directory} is not the user's own (owner {status.st_uid}, mode "
            f"{status.st_mode & 0o777:o}): remove it, and the fan-out hub makes it again"
        )
    return directory


@cache  # read once per process: every task of the process asks
def build_digest() -> str:
    """Names this build of the package: a digest of its source files (or its version,
    when it runs from an archive), so that a hub of another build is never used."""
    sources = sorted(Path(__file__).parent.glob("*.py"))
    if not sources:
        return version("pyspark-kinesis")
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def hub_address() -> str:
    """Where this build's hub listens: a Unix socket in `hub_directory()`."""
    address = str(hub_directory() / f"hub-{build_digest()}.sock")
    if len(address.encode()) > _LONGEST_SOCKET_PATH:
        raise KinesisSourceError(
            f"the fan-out hub's socket path {address} is longer than Unix sockets allow "
            f"({_LONGEST_SOCKET_PATH} bytes): set TMPDIR to a shorter directory"
        )
    return address


# The hub's side -----------------------------------------------------------------------


class _Activity:
    """When the hub last served a take, and how many it serves now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving = 0
        self._last_s = time.monotonic()

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        with self._lock:
            self._serving += 1
        try:
            yield
        finally:
            with self._lock:
                self._serving -= 1
                self._last_s = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self._serving else time.monotonic() - self._last_s


def _exit_when_idle(activity: _Activity, address: str, idle_s: float) -> None:
    while activity.idle_for() < idle_s:
        time.sleep(min(1.0, idle_s / 10))
    log.info("no take for %gs: the fan-out hub exits", idle_s)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)
    # Daemon threads hold subscriptions' event streams; nothing of them needs saving.
    os._exit(0)


def _serve_take(connection: Connection, activity: _Activity) -> None:
    with connection, activity.serving():
        try:
            request: TakeRequest = connection.recv()
        except EOFError:
            return
        reader = SubscribedTake(
            make_client(request.options),
            request.options,
            request.shard_id,
            request.start,
            request.take,
            not_before_s=request.not_before_s,
        )
        pages = iter(reader)
        try:
            with contextlib.closing(pages):  # releases the subscription if the task went away
                for page in pages:
                    connection.send(("page", page))
            connection.send(("end", reader.end))
        except (BrokenPipeError, ConnectionResetError):
            log.info("the task reading %s went away mid-take", request.shard_id)
        except Exception as error:  # the task's to raise
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.send(("error", _picklable(error)))


def _picklable(error: Exception) -> Exception:
    """The source's own errors as they are (they pickle); any other named in one of them."""
    if isinstance(error, KinesisSourceError):
        return error
    return KinesisSourceError(f"{type(error).__name__}: {error}")


def serve(address: str, idle_s: float = IDLE_CLOSE_S) -> None:
    """Serves takes at `address` until no task asked anything for `idle_s`."""
    activity = _Activity()
    with Listener(address, family="AF_UNIX") as listener:
        threading.Thread(
            target=_exit_when_idle, args=(activity, address, idle_s), daemon=True
        ).start()
        log.info("the fan-out hub serves takes at %s", address)
        while True:
            connection = listener.accept()
            threading.Thread(target=_serve_take, args=(connection, activity), daemon=True).start()


# The task's side ------------------------------------------------------------------------


def _start_hub(address: str) -> None:
    """Starts the hub in a session of its own, so that it outlives the worker starting it.

    It finds this package as the worker does: the worker's `sys.path` is its PYTHONPATH
    (a package shipped with `--py-files` is on the path, not installed).
    """
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))}
    with open(address.removesuffix(".sock") + ".log", "ab") as hub_log:
        subprocess.Popen(  # noqa: S603 (this interpreter, this module)
            [sys.executable, "-m", __name__, address],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=hub_log,
            stderr=hub_log,
            start_new_session=True,
        )


def connect_to_hub(address: str) -> Connection:
    """A connection to the host's hub at `address`, started first if none answers."""
    with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
        return Client(address, family="AF_UNIX")
    # One task starts it; the others wait here and find it started.
    with open(address.removesuffix(".sock") + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
            return Client(address, family="AF_UNIX")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)  # left by a hub that was killed
        _start_hub(address)
        deadline = time.monotonic() + HUB_START_PATIENCE_S
        while True:
            try:
                return Client(address, family="AF_UNIX")
            except (FileNotFoundError, ConnectionRefusedError) as error:
                if time.monotonic() > deadline:
                    raise KinesisSourceError(
                        f"the fan-out hub did not answer at {address} within "
                        f"{HUB_START_PATIENCE_S:g}s of its start; its log is beside it"
                    ) from error
            time.sleep(_POLL_S)


class HubTake(TakeReader):
    """A task's take read through the host's hub: the same records `SubscribedTake` reads,
    from a subscription that outlives the task and the Python worker running it."""

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        request = TakeRequest(self.options, self.shard_id, self.start, self.take, self.not_before_s)
        address = hub_address()
        # A hub may exit (idle) just as a task connects: then it answered nothing, and the
        # take is asked again of a hub started anew.
        for _ in range(2):
            with connect_to_hub(address) as connection:
                connection.send(request)
                answered = False
                while True:
                    try:
                        kind, value = connection.recv()
                    except EOFError as error:
                        if answered:
                            raise KinesisSourceError(
                                f"the fan-out hub at {address} ended while reading shard "
                                f"{self.shard_id}; the task's retry reads the take again"
                            ) from error
                        break
                    answered = True
                    if kind == "page":
                        yield value
                    elif kind == "end":
                        self.end = value
                        return
                    else:
                        raise value
        raise KinesisSourceError(
            f"the fan-out hub at {address} ended twice before answering; its log is beside it"
        )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(sys.argv[1])
