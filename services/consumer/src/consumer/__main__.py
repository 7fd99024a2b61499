"""Command line: `python -m consumer` runs the query, `python -m consumer report` shows the sink."""

from __future__ import annotations

import argparse
import sys

from consumer.app import run
from consumer.log_setup import configure_logging
from consumer.report import print_report
from consumer.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="consumer", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "report"],
        help="run the streaming query (default), or print the sink's contents as JSON",
    )
    parser.add_argument(
        "--rows",
        action="store_true",
        help="with report: add each event's partition key, shard, sequence number and batch id",
    )
    arguments = parser.parse_args()
    settings = load_settings()
    configure_logging(settings.consumer_log_level)
    if arguments.command == "report":
        print_report(settings, rows=arguments.rows)
        return
    sys.exit(run(settings))


if __name__ == "__main__":
    main()
