"""Pure functions from settings classes to `.env.example` and the settings table of
`docs/configuration.md`.

A field's documentation is the string literal right under its declaration (an
attribute docstring), read from the class's source: pydantic's `description`
stays free for what a field accepts, which the producer's errors quote.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

TABLE_START = "<!-- settings table: `make docs` writes it from the settings classes -->"
TABLE_END = "<!-- end of the settings table -->"
ENV_EXAMPLE_HEADER = (
    "# Copy to .env to change the stack's settings; every variable is optional.\n"
    "# docker compose reads .env from this folder. Values shown are the defaults.\n"
    "# Written by `make docs` from the settings classes: edit those, not this file.\n"
)


class UndocumentedSettingError(ValueError):
    """A settings field without the one line of documentation under it."""


@dataclass(frozen=True)
class Section:
    """A heading and the classes whose fields it documents, each field once, first come.

    `only` restricts the section to those fields (shared ones, such as the stream's name).
    """

    title: str
    classes: tuple[type[BaseSettings], ...]
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Setting:
    section: str
    variable: str
    default: str
    doc: str


def field_docs(settings_class: type[BaseSettings]) -> dict[str, str]:
    """Each field's attribute docstring, on one line, from the class and the classes it
    extends (the services' shared `KinesisConnection`)."""
    docs: dict[str, str] = {}
    for cls in reversed(settings_class.__mro__):
        if issubclass(cls, BaseSettings) and not cls.__module__.startswith("pydantic"):
            docs |= _own_field_docs(cls)
    return docs


def _own_field_docs(settings_class: type[BaseSettings]) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(settings_class)))
    body = tree.body[0].body  # type: ignore[attr-defined]  # the class definition
    docs = {}
    for declaration, following in itertools.pairwise(body):
        if (
            isinstance(declaration, ast.AnnAssign)
            and isinstance(declaration.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[declaration.target.id] = " ".join(following.value.value.split())
    return docs


def stack_default(field: FieldInfo) -> str:
    """The default the stack runs with, as Compose and `.env` spell it ('' for unset)."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "stack_default" in extra:
        return str(extra["stack_default"])
    value = field.default
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, PurePath):
        return value.as_posix()
    return str(value)


def settings(sections: Sequence[Section]) -> list[Setting]:
    """Every field of the sections' classes once, in section then declaration order."""
    documented: list[Setting] = []
    seen: set[str] = set()
    for section in sections:
        for settings_class in section.classes:
            docs = field_docs(settings_class)
            for name, field in settings_class.model_fields.items():
                if name in seen or (section.only and name not in section.only):
                    continue
                if name not in docs:
                    raise UndocumentedSettingError(
                        f"{settings_class.__name__}.{name} has no documentation: add one line "
                        "as a string right under the field, then run `make docs`"
                    )
                seen.add(name)
                documented.append(
                    Setting(section.title, name.upper(), stack_default(field), docs[name])
                )
    return documented


def env_example(documented: Iterable[Setting]) -> str:
    lines, section = [ENV_EXAMPLE_HEADER.rstrip("\n")], ""
    for setting in documented:
        if setting.section != section:
            section = setting.section
            lines += ["", f"# --- {section} ---"]
        lines += [f"# {setting.doc}", f"{setting.variable}={setting.default}"]
    return "\n".join(lines) + "\n"


def settings_table(documented: Iterable[Setting]) -> str:
    lines, section = ["| variable | default | what it sets |", "| --- | --- | --- |"], ""
    for setting in documented:
        if setting.section != section:
            section = setting.section
            lines.append(f"| **{section}** |  |  |")
        default = f"`{setting.default}`" if setting.default else "(empty)"
        lines.append(f"| `{setting.variable}` | {default} | {setting.doc} |")
    return "\n".join(lines)


def with_settings_table(page: str, table: str) -> str:
    """The page with the text between the table's markers replaced by `table`."""
    before, start, rest = page.partition(TABLE_START)
    _, end, after = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"the page lacks the markers {TABLE_START!r} and {TABLE_END!r}")
    return f"{before}{TABLE_START}\n{table}\n{TABLE_END}{after}"
