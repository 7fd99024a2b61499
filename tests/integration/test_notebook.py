"""The tutorial's notebook, executed headless against the stack's LocalStack.

The kernel runs on the host with this environment's Python (PySpark and pyspark_kinesis
installed), from a kernel spec written for the test, so no other `python3` kernel on the machine
is picked up. The notebook reads its endpoint and stream name from the environment, as it does
in the `notebook` container. The `notebook` profile's JupyterLab container is started in the same
Compose project (about two minutes to build its image on a warm build cache) and checked to
answer with its token only.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from nbclient import NotebookClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "kinesis_pyspark.ipynb"
KERNEL = "kinesis-notebook-it"
# Building the notebook image takes about two minutes on a warm cache; a loaded machine, more.
BUILD_TIMEOUT_S = 900
SAMPLES = [
    ("message1", 2),
    ("message2", 1),
    ("message1", 3),
    ("message3", 4),
    ("message2", 5),
]


def _write_kernel_spec(data_dir: Path) -> None:
    spec_dir = data_dir / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "kinesis-stack (tests)",
        "language": "python",
        # Spark's Python workers run with the same interpreter as the kernel.
        "env": {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def executed(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The notebook after a headless run, and the stream name it used."""
    data_dir = tmp_path_factory.mktemp("jupyter")
    _write_kernel_spec(data_dir)
    stream_name = f"notebook-it-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JUPYTER_DATA_DIR", str(data_dir))
        env.setenv("KINESIS_ENDPOINT_URL", stack.endpoint)
        env.setenv("AWS_REGION", "us-east-1")
        env.setenv("NOTEBOOK_STREAM_NAME", stream_name)
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        client = NotebookClient(
            notebook, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": ROOT}}
        )
        client.execute()
    nbformat.write(notebook, data_dir / "executed.ipynb")  # kept for a look after a failure
    return {"notebook": notebook, "stream_name": stream_name}


def _output(notebook: Any, tag: str, mime: str = "text/plain") -> str:
    cell = next(c for c in notebook.cells if tag in c.metadata.get("tags", []))
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert results, f"cell {tag!r} showed no result: {cell.outputs}"
    return str(results[-1].data[mime])


def _table_rows(text: str) -> list[list[str]]:
    """A pandas DataFrame's text form, as the cells of each row (the header and index dropped)."""
    return [line.split()[1:] for line in text.splitlines()[1:]]


def test_notebook_shows_the_five_messages(executed: dict[str, Any]) -> None:
    rows = _table_rows(_output(executed["notebook"], "messages"))
    received = [(message_type, int(count)) for message_type, count in rows]
    assert sorted(received) == sorted(SAMPLES)


def test_notebook_counts_messages_per_type(executed: dict[str, Any]) -> None:
    messages: Counter[str] = Counter()
    count_sums: Counter[str] = Counter()
    # window_start is a date and a time; the last three cells are type, messages, count_sum.
    for *_, message_type, events, count_sum in _table_rows(_output(executed["notebook"], "counts")):
        messages[message_type] += int(events)
        count_sums[message_type] += int(count_sum)
    assert messages == {"message1": 2, "message2": 2, "message3": 1}
    assert count_sums == {"message1": 5, "message2": 6, "message3": 4}


def test_notebook_writes_the_enriched_messages_to_a_second_stream_and_reads_them_back(
    executed: dict[str, Any],
) -> None:
    rows = _table_rows(_output(executed["notebook"], "enriched"))
    read_back = [(message_type, int(count), int(doubled)) for message_type, count, doubled in rows]
    assert sorted(read_back) == sorted((kind, count, 2 * count) for kind, count in SAMPLES)


def test_notebook_plots_the_counts(executed: dict[str, Any]) -> None:
    cell = next(c for c in executed["notebook"].cells if "plot" in c.metadata.get("tags", []))
    assert any("image/png" in o.get("data", {}) for o in cell.outputs)


def test_notebook_deletes_its_stream(stack: Any, executed: dict[str, Any]) -> None:
    assert _output(executed["notebook"], "deleted") == "False"
    streams = stack.kinesis().list_streams()["StreamNames"]
    assert executed["stream_name"] not in streams
    assert f"{executed['stream_name']}-enriched" not in streams


@pytest.fixture(scope="module")
def jupyter(stack: Any) -> Iterator[dict[str, Any]]:
    """The notebook profile's container in the stack's project, on a free port, with a token."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = {"JUPYTER_TOKEN": secrets.token_hex(16), "JUPYTER_PORT": str(port)}
    compose = [*stack.compose.compose_command_property, "--profile", "notebook"]
    with pytest.MonkeyPatch.context() as env:
        for name, value in settings.items():
            env.setenv(name, value)
        try:
            subprocess.run(
                [*compose, "up", "--detach", "--build", "--no-deps", "notebook"],
                cwd=ROOT,
                check=True,
                capture_output=True,
                timeout=BUILD_TIMEOUT_S,
            )
            url = f"http://127.0.0.1:{port}"
            stack.wait_until(lambda: _answers(url), "JupyterLab to answer", deadline_s=120)
            yield {"url": url, "token": settings["JUPYTER_TOKEN"], "compose": compose}
        finally:
            # The stack's own teardown knows nothing of the profile: remove the container here.
            subprocess.run(
                [*compose, "rm", "--stop", "--force", "notebook"],
                cwd=ROOT,
                timeout=120,
                check=False,
            )


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/api", timeout=2).ok
    except requests.RequestException:
        return False


def test_jupyter_refuses_requests_without_its_token(jupyter: dict[str, Any]) -> None:
    answer = requests.get(f"{jupyter['url']}/api/contents/kinesis_pyspark.ipynb", timeout=10)
    assert answer.status_code == 403


def test_jupyter_serves_the_notebook_with_its_token(jupyter: dict[str, Any]) -> None:
    answer = requests.get(
        f"{jupyter['url']}/api/contents/kinesis_pyspark.ipynb",
        headers={"Authorization": f"token {jupyter['token']}"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.json()["type"] == "notebook"


def test_jupyter_runs_as_app_with_the_kinesis_source(jupyter: dict[str, Any]) -> None:
    check = "import os, jupyterlab, matplotlib, pyspark_kinesis; print(os.getuid())"
    answer = subprocess.run(
        [*jupyter["compose"], "exec", "-T", "notebook", "python", "-c", check],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "10001"
