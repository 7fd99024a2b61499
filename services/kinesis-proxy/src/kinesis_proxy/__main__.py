"""`python -m kinesis_proxy`: the proxy as a service, until SIGTERM."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from kinesis_proxy.server import KinesisProxy
from kinesis_proxy.settings import parse_settings


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_settings(argv)
    proxy = KinesisProxy(settings.upstream, settings.behaviours, (settings.host, settings.port))

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    # The CLI's own output, on stderr as before: where it serves, and at the end what it did.
    print(
        f"kinesis proxy on {settings.host}:{proxy.server_address[1]} -> {settings.upstream}: "
        f"{settings.behaviours}",
        file=sys.stderr,
        flush=True,
    )
    try:
        proxy.serve_forever()
    finally:
        print(f"kinesis proxy stopping; it did: {proxy.counters()}", file=sys.stderr, flush=True)
        proxy.server_close()


if __name__ == "__main__":
    main()
