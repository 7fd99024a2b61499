"""The settings classes are the one source of every default and its documentation.

`.env.example` and the table of docs/configuration.md are generated from them (`make docs`), and
every `${NAME:-default}` in the compose files must equal the classes' value. All
checks iterate over every field and every compose variable: a new setting is
covered without touching this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, TypeAdapter
from pydantic_settings import BaseSettings

from settings_docs.__main__ import ROOT, SECTIONS, generated
from settings_docs.render import Section, UndocumentedSettingError, settings, stack_default

pytestmark = pytest.mark.unit

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.aws.yml", "docker-compose.proxy.yml")
# ${NAME:-default} and ${NAME-default}; ${NAME:?message} has no default and is left out.
_COMPOSE_DEFAULT = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*):?-(?P<default>[^}]*)\}")


def _compose_defaults() -> dict[str, set[str]]:
    defaults: dict[str, set[str]] = {}
    for name in COMPOSE_FILES:
        for match in _COMPOSE_DEFAULT.finditer((ROOT / name).read_text()):
            defaults.setdefault(match["name"], set()).add(match["default"])
    return defaults


def _classes() -> list[type[BaseSettings]]:
    return list(dict.fromkeys(cls for section in SECTIONS for cls in section.classes))


def _declared(variable: str) -> list[tuple[type[BaseSettings], str]]:
    field = variable.lower()
    return [(cls, field) for cls in _classes() if field in cls.model_fields]


def _same_value(cls: type[BaseModel], field: str, compose_default: str) -> bool:
    """Whether Compose's text means the class's stack default, once typed as the field is."""
    info = cls.model_fields[field]
    expected = stack_default(info)
    if compose_default == expected:
        return True
    if not compose_default or not expected:
        return False  # one side unset, the other not
    adapter: TypeAdapter[object] = TypeAdapter(info.annotation)
    return bool(adapter.validate_python(compose_default) == adapter.validate_python(expected))


@pytest.mark.parametrize("path", sorted(generated(), key=str), ids=lambda path: path.name)
def test_generated_files_are_up_to_date(path: Path):
    assert path.read_text() == generated()[path], f"{path.name} is stale: run `make docs`"


@pytest.mark.parametrize("variable", sorted(_compose_defaults()))
def test_each_compose_default_equals_the_settings_classes(variable: str):
    declared = _declared(variable)
    assert declared, f"{variable} has a default in the compose files but no settings class field"
    for compose_default in _compose_defaults()[variable]:
        for cls, field in declared:
            assert _same_value(cls, field, compose_default), (
                f"{variable}: compose default {compose_default!r}, {cls.__name__}.{field} "
                f"{stack_default(cls.model_fields[field])!r}"
            )


def test_every_documented_setting_is_declared_in_a_compose_file():
    compose_text = "".join((ROOT / name).read_text() for name in COMPOSE_FILES)
    undeclared = [
        setting.variable
        for setting in settings(SECTIONS)
        if f"${{{setting.variable}:" not in compose_text
        and f"${{{setting.variable}-" not in compose_text
    ]
    assert not undeclared, f"add these to docker-compose.yml as ${{NAME:-default}}: {undeclared}"


class _Undocumented(BaseSettings):
    documented: int = 1
    """One line."""
    forgotten: int = 2


def test_a_field_without_documentation_is_named_with_the_fix():
    with pytest.raises(
        UndocumentedSettingError, match=r"_Undocumented\.forgotten has no documentation"
    ):
        settings([Section("test", (_Undocumented,))])
