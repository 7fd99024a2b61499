"""One owner per default: each variable declared by one settings class, the compose files
all held to them, LocalStack's endpoint spelled once in code, the init script without
copies of Compose's defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kinesis_connection import LOCALSTACK_URL

from settings_docs.__main__ import ROOT, SECTIONS
from tests.settings.test_settings_docs import COMPOSE_FILES

pytestmark = pytest.mark.unit

INIT_SCRIPT = ROOT / "scripts/localstack/ready.d/10-create-stream.sh"
CODE_FOLDERS = ("services", "pyspark-kinesis/src", "settings_docs", "testkit", "bench")


def test_every_compose_file_is_held_to_the_settings_classes():
    assert set(COMPOSE_FILES) == {path.name for path in ROOT.glob("docker-compose*.yml")}


def test_each_variable_is_declared_by_one_settings_class():
    owners: dict[str, list[str]] = {}
    classes = dict.fromkeys(cls for section in SECTIONS for cls in section.classes)
    for cls in classes:
        for name in cls.__annotations__:
            if name in cls.model_fields:
                owners.setdefault(name.upper(), []).append(cls.__name__)
    declared_twice = {name: where for name, where in owners.items() if len(where) > 1}
    assert not declared_twice


def test_the_localstack_init_script_takes_what_compose_passes():
    script = INIT_SCRIPT.read_text()
    assert not re.search(r"\$\{[A-Z_]+:?-", script), "a default copied into the init script"
    required = set(re.findall(r"\$\{([A-Z_]+):\?", script))
    assert required == {"KINESIS_STREAM_NAME", "KINESIS_SHARD_COUNT", "AWS_DEFAULT_REGION"}
    localstack = (ROOT / "docker-compose.yml").read_text().split("\n  producer:")[0]
    for name in required:
        assert f"      {name}: " in localstack, f"docker-compose.yml does not pass {name}"


def _python_files() -> list[Path]:
    """The code, not its tests (which use the URL as data)."""
    return [
        path
        for folder in CODE_FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if "tests" not in path.relative_to(ROOT).parts and ".venv" not in path.parts
    ]


def test_localstacks_endpoint_is_spelled_once_in_the_code():
    # The compose files spell it as defaults, each held to this constant by
    # test_settings_docs (KINESIS_ENDPOINT_URL, KINESIS_PROXY_UPSTREAM).
    spelled = [
        str(path.relative_to(ROOT))
        for path in _python_files()
        if LOCALSTACK_URL in path.read_text()
    ]
    assert spelled == ["services/kinesis-connection/src/kinesis_connection/__init__.py"]


def test_both_services_refuse_a_bad_value_in_the_words_the_docs_quote(monkeypatch, capsys):
    from consumer.settings import load_settings as load_consumer_settings
    from producer.settings import SettingsError
    from producer.settings import load_settings as load_producer_settings

    monkeypatch.setenv("CONSUMER_TRIGGER", "sometimes")
    with pytest.raises(SystemExit):
        load_consumer_settings()
    line = capsys.readouterr().err.strip()
    configuration = " ".join((ROOT / "docs" / "configuration.md").read_text().split())
    assert f"for example `{line}`" in configuration

    monkeypatch.delenv("CONSUMER_TRIGGER")
    monkeypatch.setenv("AWS_REGION", "mars")
    with pytest.raises(SystemExit):
        load_consumer_settings()
    consumer_line = capsys.readouterr().err.strip()
    with pytest.raises(SettingsError) as producer_error:
        load_producer_settings()
    assert consumer_line == f"configuration error: {producer_error.value}"
