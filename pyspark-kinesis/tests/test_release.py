"""The library as a release: the built wheel and sdist, installed where nothing else is.

`uv build` makes both; `twine check` reads them as an index would. The wheel then goes
into a fresh virtual environment with PySpark alone (and what the wheel requires), once
for the oldest PySpark it supports and once for the newest, and release_smoke.py runs
the tutorial's read, a sink write and a batch read against LocalStack there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parent
# The ends of `pyspark>=4.2.0,<4.4` in pyproject.toml: the newest patch of each minor.
SUPPORTED_PYSPARK = ["4.2.1", "4.3.0"]
# A PySpark download and a JVM start on a loaded 2-core machine.
STEP_TIMEOUT_S = 900


def _uv() -> str:
    # `uv run` (make test) names its own binary in UV.
    uv = os.environ.get("UV")
    if not uv:
        pytest.fail("UV is not set: run the suite with `uv run pytest` (make test does)")
    return uv


def _run(*command: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    answer = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
        **kwargs,
    )
    assert answer.returncode == 0, f"{command}:\n{answer.stdout[-3000:]}\n{answer.stderr[-3000:]}"
    return answer


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run(_uv(), "build", "--package", "pyspark-kinesis", "--out-dir", out, cwd=ROOT)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def _version() -> str:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def test_twine_accepts_the_wheel_and_the_sdist(dist: dict[str, Path]) -> None:
    _run(sys.executable, "-m", "twine", "check", "--strict", dist["wheel"], dist["sdist"])


def test_the_wheel_holds_both_formats_and_states_what_it_supports(dist: dict[str, Path]) -> None:
    assert dist["wheel"].name.startswith(f"pyspark_kinesis-{_version()}-py3-none-any")
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"pyspark_kinesis-{_version()}.dist-info/METADATA").decode()
    assert {"pyspark_kinesis/__init__.py", "pyspark_aws_kinesis/__init__.py"} <= set(names)
    assert "pyspark_kinesis/py.typed" in names
    assert "Requires-Dist: pyspark<4.4,>=4.2.0" in metadata
    assert "Requires-Python: <3.14,>=3.11" in metadata


def test_the_changelog_describes_this_version() -> None:
    changelog = (PACKAGE / "CHANGELOG.md").read_text()
    assert f"\n## {_version()} - " in changelog


@pytest.mark.parametrize("pyspark_version", SUPPORTED_PYSPARK)
def test_the_wheel_alone_with_pyspark_reads_writes_and_reads_back(
    dist: dict[str, Path], kinesis_endpoint: str, tmp_path: Path, pyspark_version: str
) -> None:
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    _run(_uv(), "venv", "--quiet", "--python", sys.executable, venv)
    _run(_uv(), "pip", "install", "--quiet", "--python", python,
         f"pyspark=={pyspark_version}", dist["wheel"])  # fmt: skip
    # Only the new environment: no PYTHONPATH, and Spark's workers on its Python.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYSPARK")}
    env.pop("PYTHONPATH", None)
    env["PYSPARK_PYTHON"] = str(python)
    answer = _run(python, PACKAGE / "tests" / "release_smoke.py", kinesis_endpoint,
                  env=env, cwd=tmp_path)  # fmt: skip
    seen = json.loads(answer.stdout.strip().splitlines()[-1])
    assert seen["pyspark"] == pyspark_version
    assert seen["pyspark_kinesis"] == _version()
    assert seen["module"].startswith(str(venv)), seen["module"]
    assert seen["read"] == list(range(20))
    assert seen["copied"] == list(range(20))
    assert seen["fan_out_read"] == list(range(20))
    assert seen["consumers_left"] == []
