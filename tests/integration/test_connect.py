"""The connect profile's Spark Connect server, read through from clients with no Spark of their own.

The server (`spark-connect`, the consumer image) starts in the session stack's project on
a free port. The tutorial's read (scripts/connect_tutorial.py) runs from a container that
has `pyspark-client` and boto3 and no Java (tests/integration/connect-client), so the
`format("kinesis")` read can only have run on the server; and from the host, through the
published port, as docs/spark-connect.md shows it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kinesis_connection import LOCALSTACK_URL

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).parent / "scripts" / "connect_tutorial.py"
CLIENT_COMPOSE = "tests/integration/connect-client/compose.yml"
RECORDS = 50
# The notebook's five sample messages (type, count).
SAMPLES = [("message1", 2), ("message2", 1), ("message1", 3), ("message3", 4), ("message2", 5)]
# A JVM start, and the client image's build, on a loaded 2-core machine.
START_TIMEOUT_S = 900


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def connect(stack: Any) -> Iterator[dict[str, Any]]:
    """The Connect server in the stack's project, healthy, on a free 127.0.0.1 port."""
    port = _free_port()
    # The stack's compose files (COMPOSE_FILE, as the stack's own `docker compose` reads
    # it), plus the client's.
    files = os.environ.get("COMPOSE_FILE", "docker-compose.yml").split(os.pathsep)
    compose = ["docker", "compose", *(f"--file={name}" for name in [*files, CLIENT_COMPOSE])]
    compose += ["--profile", "connect"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SPARK_CONNECT_PORT", str(port))
        try:
            # --wait: returns once the healthcheck passed, that is once the server answered.
            # --build: the image from this checkout (a cache hit after the stack's build).
            stack.run("--profile", "connect", "up", "--detach", "--build", "--no-deps", "--wait",
                      "--wait-timeout", "420", "spark-connect")  # fmt: skip
            # Built here, not by `run --build`, whose build log would precede the run's output.
            notebook = [*stack.compose.compose_command_property, "--profile", "notebook"]
            for built in (
                _compose(*compose, "build", "connect-client"),
                _compose(*notebook, "build", "notebook"),
            ):
                assert built.returncode == 0, built.stderr[-3000:]
            yield {"port": port, "compose": compose}
        finally:
            # The stack's own teardown knows nothing of the profile: remove the container here.
            stack.run("--profile", "connect", "rm", "--stop", "--force", "spark-connect",
                      check=False)  # fmt: skip


def _compose(*command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
        **kwargs,
    )


def _client(connect: dict[str, Any], *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return _compose(*connect["compose"], "run", "--rm", "-T", "connect-client", *args, **kwargs)


def _seen(answer: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    # The error's Python side, without the JVM's stack frames (they would fill the message).
    said = "\n".join(line for line in answer.stderr.splitlines() if not line.startswith("\tat "))
    assert answer.returncode == 0, said[-3000:]
    return dict(json.loads(answer.stdout.strip().splitlines()[-1]))


def test_a_client_without_java_reads_kinesis_through_connect_exactly_once(connect):
    seen = _seen(_client(connect, "-", input=SCRIPT.read_text()))
    assert seen["numbers"] == list(range(RECORDS))
    assert seen["server_spark"] == "4.3.0"
    assert seen["java"] is None
    assert seen["jvm_bridge"] is False


def test_the_client_image_has_pyspark_client_and_no_spark(connect):
    check = (
        "import importlib.metadata as m, importlib.util as u, pyspark, os; "
        "print(m.version('pyspark-client'), u.find_spec('pyspark_kinesis') is None, "
        "os.path.isdir(os.path.join(os.path.dirname(pyspark.__file__), 'jars')))"
    )
    answer = _client(connect, "-c", check)
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert answer.stdout.split() == ["4.2.0", "True", "False"]


def test_the_readme_code_from_the_host_reads_through_the_published_port(stack, connect):
    env = {
        **os.environ,
        "SPARK_REMOTE": f"sc://localhost:{connect['port']}",
        "KINESIS_ENDPOINT_URL": stack.endpoint,
        # The server reads LocalStack on the Compose network.
        "KINESIS_SERVER_ENDPOINT_URL": LOCALSTACK_URL,
    }
    answer = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert _seen(answer)["numbers"] == list(range(RECORDS))


def test_the_server_is_published_on_loopback_only_and_runs_as_app(stack, connect):
    published = stack.run("--profile", "connect", "port", "spark-connect", "15002")
    assert published.stdout.strip() == f"127.0.0.1:{connect['port']}"
    uid = stack.run("--profile", "connect", "exec", "-T", "spark-connect", "id", "-u")
    assert uid.stdout.strip() == "10001"


def test_the_notebook_runs_on_the_connect_server(stack, connect):
    """The notebook profile's image executes the tutorial's notebook with Spark on the server."""
    stream_name = f"notebook-connect-{uuid.uuid4().hex[:8]}"
    answer = stack.run(
        "--profile", "notebook", "--profile", "connect", "run", "--rm", "-T", "--no-deps", "-e", "NOTEBOOK_SPARK_REMOTE=sc://spark-connect:15002",
        "-e", f"NOTEBOOK_STREAM_NAME={stream_name}", "notebook",
        "jupyter", "nbconvert", "--to", "notebook", "--execute", "--stdout",
        "--ExecutePreprocessor.timeout=600", "kinesis_pyspark.ipynb",
        check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr[-3000:]
    notebook = json.loads(answer.stdout)
    cell = next(c for c in notebook["cells"] if "messages" in c["metadata"].get("tags", []))
    (table,) = [o["data"]["text/plain"] for o in cell["outputs"] if "data" in o]
    rows = "".join(table).splitlines()[1:]
    assert sorted((row.split()[1], int(row.split()[2])) for row in rows) == sorted(SAMPLES)
