"""LocalStack behind the proxy: each call forwarded as Kinesis' JSON API, one session a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from email.message import Message
from typing import Any

import requests

from kinesis_proxy.answers import Answer, error


class Upstream:
    def __init__(self, url: str, count: Callable[[str], None]) -> None:
        self.url = url
        self._count = count
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        session: requests.Session = self._local.session
        return session

    def call(
        self, operation: str, request: dict[str, Any], headers: Message
    ) -> tuple[int, dict[str, Any]]:
        answer = self.forward(operation, json.dumps(request).encode(), headers)
        return answer.status, json.loads(answer.body or b"{}")

    def forward(self, operation: str, raw: bytes, headers: Message) -> Answer:
        passed = {
            name: value
            for name, value in headers.items()
            if name.lower() not in ("host", "content-length", "x-amz-target")
        }
        passed["X-Amz-Target"] = f"Kinesis_20131202.{operation}"
        try:
            answer = self._session().post(self.url + "/", data=raw, headers=passed, timeout=60)
        except requests.RequestException as failure:
            # LocalStack away (starting, restarting): a gateway's answer, which clients retry.
            self._count("upstream_unreachable")
            return error("ServiceUnavailable", f"upstream {self.url}: {failure}", 503)
        return Answer(answer.status_code, answer.content, answer.headers.get("Content-Type", ""))
