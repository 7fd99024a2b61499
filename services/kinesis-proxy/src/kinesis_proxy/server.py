"""The proxy's HTTP server: routes each Kinesis call to the behaviour that answers it."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kinesis_proxy.answers import Answer, error
from kinesis_proxy.behaviours import Behaviours
from kinesis_proxy.fan_out import OPERATIONS, ConnectionCut, FanOut
from kinesis_proxy.faults import injected_fault, over_control_plane_limit
from kinesis_proxy.reads import Reads
from kinesis_proxy.state import ProxyState
from kinesis_proxy.trimming import Trimming
from kinesis_proxy.upstream import Upstream
from kinesis_proxy.writes import Writes

Handler = Callable[[dict[str, Any], Message], Answer]


class KinesisProxy(ThreadingHTTPServer):
    """Forwards Kinesis' JSON API to `upstream` (LocalStack), behaving as `behaviours` say.

    `behaviours` may be replaced while the proxy runs; `events` counts what it
    did (`records_read`, `throttled_reads`, `empty_pages`, `expired_iterators`, ...)
    and every call it was asked, by operation (`calls:GetRecords`, ...).
    """

    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        behaviours: Behaviours | None = None,
        address: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        super().__init__(address, _RequestHandler)
        self.upstream = upstream
        self.state = ProxyState(behaviours or Behaviours())
        self._upstream = Upstream(upstream, self.state.count)
        trimming = Trimming(self.state, self._upstream)
        reads = Reads(self.state, self._upstream, trimming)
        writes = Writes(self.state, self._upstream)
        self._handlers: dict[str, Handler] = {
            "GetShardIterator": reads.get_shard_iterator,
            "GetRecords": reads.get_records,
            "PutRecords": writes.put_records,
            "PutRecord": writes.put_record,
        }
        self._fan_out = FanOut(self.state, self._upstream, trimming)

    @property
    def behaviours(self) -> Behaviours:
        return self.state.behaviours

    @behaviours.setter
    def behaviours(self, behaviours: Behaviours) -> None:
        self.state.behaviours = behaviours

    @property
    def events(self) -> Counter[str]:
        return self.state.events

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def counters(self) -> dict[str, int]:
        return self.state.counters()

    def server_close(self) -> None:
        self._fan_out.close()
        super().server_close()

    def answer(self, operation: str, raw: bytes, headers: Message) -> Answer:
        """The answer to one call; the body is parsed only when it is JSON (a body in another
        encoding, CBOR from the Java SDK, passes through untouched)."""
        if not headers.get("Content-Type", "").startswith("application/x-amz-json"):
            return self._upstream.forward(operation, raw, headers)
        request = json.loads(raw or b"{}")
        self.state.count(f"calls:{operation}")
        fault = injected_fault(self.state, operation)
        if fault is not None:
            return fault
        if over_control_plane_limit(self.state, operation, request):
            self.state.count("limited_control_plane_calls")
            return error("LimitExceededException", f"Rate exceeded for {operation}")
        if operation in self._handlers:
            return self._handlers[operation](request, headers)
        if operation in OPERATIONS and self.behaviours.fan_out:
            return self._fan_out.answer(operation, request, headers)
        return self._upstream.forward(operation, raw, headers)


class _RequestHandler(BaseHTTPRequestHandler):
    server: KinesisProxy
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        answer = self.server.answer(operation, body, self.headers)
        if answer.body is None:
            self.close_connection = True  # dropped: the client sees the connection close
            return
        if answer.frames is not None:
            self._send_event_stream(answer.status, answer.content_type, answer.frames)
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def _send_event_stream(
        self, status: int, content_type: str, frames: Generator[bytes, None, None]
    ) -> None:
        """Each message as an HTTP chunk as soon as it is made, until the stream ends or
        the client hangs up."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        try:
            for frame in frames:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except ConnectionCut:
            pass  # closed with no terminating chunk: the subscriber sees the stream break
        except OSError:
            pass  # the subscriber closed its end
        finally:
            frames.close()

    def do_GET(self) -> None:
        document: dict[str, Any]
        if self.path == "/_proxy/events":
            document = dict(self.server.counters())
        elif self.path == "/_proxy/health":
            document = {"status": "serving", "upstream": self.server.upstream}
        else:
            self.send_error(404)
            return
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def running_proxy(upstream: str, behaviours: Behaviours | None = None) -> Iterator[KinesisProxy]:
    """A proxy serving on a loopback port for the duration of the block."""
    proxy = KinesisProxy(upstream, behaviours)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
