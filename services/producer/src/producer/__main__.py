"""Command line: `python -m producer [run|send FILE|samples]`.

`run` (the default, and what the container does) writes generated events per
the settings; `send` pushes a file of JSON lines; `samples` sends the
tutorial's five messages. A progress bar shows when stdout is a terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producer.events import SAMPLE_MESSAGES, EventFactory, Record, to_record
from producer.kinesis import (
    KinesisWriter,
    ProducerError,
    UnsentRecordsError,
    ensure_stream,
    make_client,
    pace,
)
from producer.settings import ProducerSettings, SettingsError, load_settings

log = logging.getLogger("producer")

EXIT_UNSENT = 3
EXIT_CONFIGURATION = 2


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="producer", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="write generated events (the default)")
    run.add_argument(
        "--count", type=int, help="how many events (0 = until stopped); PRODUCER_COUNT"
    )
    run.add_argument(
        "--rate", type=float, help="events per second (0 = as fast as possible); PRODUCER_RATE"
    )
    run.add_argument("--seed", type=int, help="seed for reproducible events; PRODUCER_SEED")
    send = commands.add_parser("send", help="send a file of JSON lines, one record per line")
    send.add_argument("file", type=Path)
    send.add_argument(
        "--raw", action="store_true", help="send lines byte for byte, valid JSON or not"
    )
    commands.add_parser("samples", help="send the tutorial's five sample messages")
    return parser.parse_args(argv)


def _generated(settings: ProducerSettings, stopping: threading.Event) -> Iterator[Record]:
    factory = EventFactory(settings.producer_seed)
    started = time.monotonic()
    for produced, event in enumerate(factory.random_events(settings.producer_count)):
        pace(started, produced, settings.producer_rate)
        if stopping.is_set():
            return
        yield to_record(event)


def _from_file(path: Path, *, raw: bool, factory: EventFactory) -> list[Record]:
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if raw:
            records.append(Record(line, factory.event_id()))
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            raise ProducerError(
                f"{path}:{number} is not JSON ({error.msg}); fix it or use --raw"
            ) from error
        if not isinstance(message, dict):
            raise ProducerError(f"{path}:{number} is not a JSON object; fix it or use --raw")
        records.append(
            to_record(factory.complete(message) if "event_id" not in message else message)
        )
    return records


def _send(writer: KinesisWriter, records: Iterable[Record], total: int | None) -> None:
    if not sys.stdout.isatty():
        writer.put_all(records)
        return
    columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("send", total=total)
        for record in records:
            writer.put(record)
            progress.update(task, completed=writer.sent)
        writer.flush()
        progress.update(task, completed=writer.sent)


def _stop_on_signals(stopping: threading.Event) -> None:
    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "received %s: sending what is buffered, then stopping", signal.Signals(signum).name
        )
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def main(argv: list[str] | None = None) -> None:
    arguments = _arguments(argv)
    overrides = {name: getattr(arguments, name, None) for name in ("count", "rate", "seed")}
    try:
        settings = load_settings(**{f"producer_{name}": value for name, value in overrides.items()})
    except SettingsError as error:
        for line in error.lines:
            print(f"configuration error: {line}", file=sys.stderr)
        sys.exit(EXIT_CONFIGURATION)
    logging.basicConfig(
        level=settings.producer_log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(_run(arguments, settings))


def _run(arguments: argparse.Namespace, settings: ProducerSettings) -> int:
    client = make_client(settings)
    writer = KinesisWriter(client, settings)
    stopping = threading.Event()
    _stop_on_signals(stopping)
    started = time.monotonic()
    try:
        ensure_stream(client, settings)
        if arguments.command == "send":
            records = _from_file(
                arguments.file, raw=arguments.raw, factory=EventFactory(settings.producer_seed)
            )
            _send(writer, records, len(records))
        elif arguments.command == "samples":
            factory = EventFactory(settings.producer_seed)
            _send(
                writer,
                [to_record(factory.complete(dict(m))) for m in SAMPLE_MESSAGES],
                len(SAMPLE_MESSAGES),
            )
        else:
            _send(writer, _generated(settings, stopping), settings.producer_count or None)
    except UnsentRecordsError as error:
        log.error("%s", error)
        return EXIT_UNSENT
    except ProducerError as error:
        log.error("%s", error)
        return EXIT_CONFIGURATION if writer.sent == 0 else 1
    finally:
        elapsed = time.monotonic() - started
        log.info(
            "sent=%d unsent=%d elapsed=%.1fs rate=%.0f/s",
            writer.sent,
            writer.unsent,
            elapsed,
            writer.sent / elapsed if elapsed else 0.0,
        )
    return 0


if __name__ == "__main__":
    main()
