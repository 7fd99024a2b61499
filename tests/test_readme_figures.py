"""The figures the README quotes in more than one place are `make bench`'s, from
bench/results.json (README and docs/ pages alike)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _documentation() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return " ".join(" ".join(page.read_text().split()) for page in pages if page.exists())


def test_edit_to_running_is_quoted_as_the_latest_bench_measured_it():
    figure = json.loads((ROOT / "bench/results.json").read_text())["edit_to_running"]
    total, stopped = figure["edit_to_query_started_s"], figure["consumer_phases_s"]
    text = _documentation()
    assert f"`query started`): {total} s in the latest `make bench`" in text
    assert f"stopped {stopped['old_query_stopped']} s after the edit" in text
    assert f"old_query_stopped {stopped['old_query_stopped']} s, query_started {total} s" in text


def test_fan_out_figures_are_quoted_as_bench_fan_out_json_has_them():
    figures = json.loads((ROOT / "bench/fan_out.json").read_text())
    readers, runs = figures["two_readers"], figures["fan_out_latency"]["runs"]
    shares = {
        mode: " and ".join(
            f"{readers[mode][reader]['vs_limit']:.2f}x" for reader in ("reader-b", "reader-a")
        )
        for mode in ("fan-out", "polling")
    }
    fan_out, polling = runs["fan-out"], runs["polling"]
    text = _documentation()
    assert f"fan-out {shares['fan-out']}, polling {shares['polling']}" in text
    assert (
        f"fan-out p50 {fan_out['p50_s']:.2f} s and p99 {fan_out['p99_s']:.2f} s against "
        f"polling's {polling['p50_s']:.2f} s and {polling['p99_s']:.2f} s "
        f"({figures['fan_out_latency']['p50_ratio']:.2f}x" in text
    )
