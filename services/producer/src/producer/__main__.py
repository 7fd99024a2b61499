"""Command line of the producer: `python -m producer`, or the `producer` script.

    producer [OPTIONS]                    write generated events per the settings (the container)
    producer [OPTIONS] send [--raw] FILE  send a file of JSON lines, one record per line
    producer [OPTIONS] samples            send the tutorial's five sample messages
    producer [OPTIONS] tail [--from-start] [--max-records N]
                                          print the stream's records as they arrive
    producer --localstack ...             any of these, from the host, against the local stack

Every option overrides the environment variable named in its help and is
validated by the same settings class. Exit codes: 0 everything sent; 1 Kinesis
refused the producer mid-run; 2 bad configuration, input file or stream (nothing
sent); 3 some records could not be sent and are in PRODUCER_UNSENT_PATH.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producer.events import EventFactory, Record, key_for_payload, to_record
from producer.sending import Pacer, pump
from producer.settings import ProducerSettings, SettingsError, load_settings
from producer.stream import ProducerError, StartupError, ensure_stream, explain, make_client
from producer.tail import as_line, tail
from producer.writer import KinesisWriter, UnsentFile, UnsentRecordsError

log = logging.getLogger("producer")

EXIT_OK, EXIT_KINESIS, EXIT_STARTUP, EXIT_UNSENT = 0, 1, 2, 3

# Command-line option -> settings field, with the help text naming the variable.
OPTIONS: dict[str, tuple[str, str]] = {
    "--stream": ("kinesis_stream_name", "stream name; KINESIS_STREAM_NAME"),
    "--region": ("aws_region", "AWS region; AWS_REGION"),
    "--endpoint-url": ("kinesis_endpoint_url", "e.g. http://localhost:4566; KINESIS_ENDPOINT_URL"),
    "--shard-count": ("kinesis_shard_count", "shards of a created stream; KINESIS_SHARD_COUNT"),
    "--rate": ("producer_rate", "records per second, 0 = as fast as possible; PRODUCER_RATE"),
    "--count": ("producer_count", "events to generate, 0 = until stopped; PRODUCER_COUNT"),
    "--seed": ("producer_seed", "seed for reproducible events and ids; PRODUCER_SEED"),
    "--batch-size": ("producer_batch_size", "records per PutRecords, 1-500; PRODUCER_BATCH_SIZE"),
    "--max-retry-seconds": (
        "producer_max_retry_seconds",
        "give up resending after this long; PRODUCER_MAX_RETRY_SECONDS",
    ),
    "--unsent-path": ("producer_unsent_path", "file for unsent records; PRODUCER_UNSENT_PATH"),
    "--log-level": ("producer_log_level", "DEBUG, INFO, WARNING or ERROR; PRODUCER_LOG_LEVEL"),
}


class InputError(ProducerError):
    """The file given to `send` cannot be sent as it is."""


def _parser() -> argparse.ArgumentParser:
    # SUPPRESS keeps unset options out of the namespace, so the environment decides,
    # and lets the options stand before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    for flag, (field, text) in OPTIONS.items():
        metavar = flag.removeprefix("--").replace("-", "_").upper()
        common.add_argument(flag, dest=field, metavar=metavar, help=text)
    common.add_argument(
        "--create-stream",
        dest="producer_create_stream",
        action="store_const",
        const="true",
        help="create the stream if missing and wait until ACTIVE; PRODUCER_CREATE_STREAM",
    )
    common.add_argument(
        "--localstack",
        action="store_true",
        help="from the host: LocalStack at LOCALSTACK_HOST (default localhost:4566) with its "
        "dummy keys, through localstack-client (KINESIS_ENDPOINT_URL is not used)",
    )
    parser = argparse.ArgumentParser(
        prog="producer",
        description=__doc__,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="{send,samples,tail}")
    send = commands.add_parser("send", parents=[common], help="send a file of JSON lines")
    send.add_argument("file", type=Path, help="one record payload per line")
    send.add_argument(
        "--raw",
        action="store_true",
        default=False,
        help="send lines byte for byte without checking they are JSON (malformed test records)",
    )
    commands.add_parser("samples", parents=[common], help="send the tutorial's five messages")
    tail = commands.add_parser(
        "tail", parents=[common], help="print the stream's records as they arrive (JSON lines)"
    )
    tail.add_argument(
        "--from-start",
        action="store_true",
        default=False,
        help="begin with the oldest record the stream keeps, not the next one to arrive",
    )
    tail.add_argument(
        "--max-records", type=int, default=0, help="stop after this many records (0: never)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    fields = {field for field, _ in OPTIONS.values()} | {"producer_create_stream"}
    overrides = {field: getattr(arguments, field) for field in fields if hasattr(arguments, field)}
    flags = {field: flag for flag, (field, _) in OPTIONS.items()}
    flags["producer_create_stream"] = "--create-stream"
    try:
        settings = load_settings(overrides, options={f: flags[f] for f in overrides})
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_STARTUP
    console = _configure_logging(settings.producer_log_level)
    if arguments.command == "tail":
        return _tail(arguments, settings)
    try:
        records, total, finite = _records(arguments, settings)
        client = make_client(settings, localstack=_localstack(arguments))
        ensure_stream(client, settings)
    except (StartupError, InputError) as error:
        log.error("%s", error)
        return EXIT_STARTUP
    return _send(records, total, finite=finite, settings=settings, client=client, console=console)


def _localstack(arguments: argparse.Namespace) -> bool:
    return bool(getattr(arguments, "localstack", False))


def _tail(arguments: argparse.Namespace, settings: ProducerSettings) -> int:
    """Prints records until Ctrl-C (or --max-records); stdout carries only the records."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    client = make_client(settings, localstack=_localstack(arguments))
    printed = 0
    try:
        records = tail(
            client, settings.kinesis_stream_name, from_start=arguments.from_start, stop=stop
        )
        for described in records:
            print(as_line(described), flush=True)
            printed += 1
            if printed == arguments.max_records:
                break
    except (ClientError, BotoCoreError) as error:
        log.error("%s", explain(error, settings))
        return EXIT_STARTUP if printed == 0 else EXIT_KINESIS
    return EXIT_OK


def _records(
    arguments: argparse.Namespace, settings: ProducerSettings
) -> tuple[Iterator[Record], int | None, bool]:
    """The records to send, their number if known, and whether they are a finite input."""
    factory = EventFactory(settings.producer_seed)
    if arguments.command == "send":
        if arguments.file.resolve() == settings.producer_unsent_path.resolve():
            raise InputError(
                f"{arguments.file} is the unsent file itself: move it aside, then send the copy"
            )
        lines = _read_lines(arguments.file, raw=arguments.raw)
        records = [Record(line, key_for_payload(line, factory)) for line in lines]
        return iter(records), len(records), True
    if arguments.command == "samples":
        samples = [to_record(event) for event in factory.samples()]
        return iter(samples), len(samples), True
    count = settings.producer_count
    events = (to_record(event) for event in factory.random_events(count))
    return events, count or None, False


def _read_lines(path: Path, *, raw: bool) -> list[bytes]:
    """The file's lines without their newline; unless raw, each must be a JSON object."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file's final newline ends the last line; it starts no record
    if raw:
        return lines
    checked = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue  # blank lines carry no record (send --raw to send empty records)
        try:
            payload = json.loads(line)
        except ValueError as error:
            raise InputError(
                f"{path}:{number} is not valid JSON ({error}): fix the line, or use "
                "`send --raw` to send lines byte for byte"
            ) from None
        if not isinstance(payload, dict):
            raise InputError(
                f"{path}:{number} is JSON but not an object: fix the line, or use `send --raw`"
            )
        checked.append(line.rstrip(b"\r"))
    return checked


def _send(
    records: Iterator[Record],
    total: int | None,
    *,
    finite: bool,
    settings: ProducerSettings,
    client: object,
    console: Console | None,
) -> int:
    stopping, abort = threading.Event(), threading.Event()
    _handle_signals(stopping, abort)
    writer = KinesisWriter(
        client,
        settings.kinesis_stream_name,
        UnsentFile(settings.producer_unsent_path),
        batch_size=settings.producer_batch_size,
        max_retry_seconds=settings.producer_max_retry_seconds,
        abort=abort,
        describe_error=lambda error: explain(error, settings),
    )
    log.info(
        "writing to stream %s in %s%s: rate=%s/s count=%s batch=%d",
        settings.kinesis_stream_name,
        settings.aws_region,
        f" at {settings.kinesis_endpoint_url}" if settings.kinesis_endpoint_url else "",
        "max" if finite or not settings.producer_rate else f"{settings.producer_rate:g}",
        total or "unlimited",
        settings.producer_batch_size,
    )
    started, code = time.monotonic(), EXIT_OK
    pacer = None if finite else Pacer(settings.producer_rate)
    try:
        with _progress(console, total, lambda: writer.stats.sent) as on_progress:
            pump(writer, records, stopping, pacer, on_progress)
    except UnsentRecordsError:
        pass  # already in the log; the summary below repeats the count and the path
    except ProducerError as error:
        log.error("%s", error)
        code = EXIT_KINESIS
    if finite:
        # A file or the samples stopped part-way: keep the rest with the unsent
        # records, so replaying the unsent file alone completes the input.
        writer.give_up(list(records), "not sent because the producer stopped")
    _log_summary(writer, time.monotonic() - started)
    if writer.stats.failed:
        log.error("%s", writer.unsent_summary())
        code = code or EXIT_UNSENT
    return code


def _log_summary(writer: KinesisWriter, elapsed: float) -> None:
    stats = writer.stats
    log.info(
        "sent=%d failed=%d unsent=%d refused=%d elapsed=%.1fs rate=%.1f/s",
        stats.sent,
        stats.failed,
        stats.unsent,
        stats.refused,
        elapsed,
        stats.sent / elapsed if elapsed > 0 else 0.0,
    )


def _handle_signals(stopping: threading.Event, abort: threading.Event) -> None:
    """First SIGTERM/SIGINT: stop and send what is buffered. Second: stop resending too."""

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stopping.is_set():
            log.warning("second %s: no more resending; the rest goes to the unsent file", name)
            abort.set()
            return
        log.info("%s: sending what is buffered, then stopping", name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def _configure_logging(level: str) -> Console | None:
    """Rich output on a terminal; plain timestamped lines on stderr everywhere else."""
    # botocore's DEBUG lines carry signed request headers (the access key id among
    # them): never let them through, whatever PRODUCER_LOG_LEVEL says.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if sys.stdout.isatty():
        console = Console()
        handler: logging.Handler = RichHandler(console=console, show_path=False)
        logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
        return console
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    return None


@contextmanager
def _progress(
    console: Console | None, total: int | None, sent: Callable[[], int]
) -> Iterator[Callable[[], None]]:
    """A progress bar on a terminal (None: no display), as a callback to call after each put."""
    if console is None:
        yield lambda: None
        return
    columns = (TextColumn("sent"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("sent", total=total)
        yield lambda: progress.update(task, completed=sent())


if __name__ == "__main__":
    main()
