"""Every relative link in the project's Markdown leads somewhere: to a file or folder that
exists and, where it names an anchor, to a heading of that page (GitHub's anchors)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("*.md", "docs/*.md", "bench/*.md", "pyspark-kinesis/*.md", "services/*/*.md")

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target), the text allowed to run over lines; an optional "title".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def _without_code(markdown: str) -> str:
    """The page with fenced blocks blanked, so a `# comment` in code is no heading."""
    return _FENCE.sub(lambda block: "\n" * block.group().count("\n"), markdown)


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped,
    spaces as hyphens, a repeated one numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    result = set()
    for heading in _HEADING.findall(_without_code(markdown)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(markdown: str) -> Iterator[str]:
    """Each link target outside code that is neither a URL nor an e-mail address."""
    prose = _CODE_SPAN.sub(lambda span: "\n" * span.group().count("\n"), _without_code(markdown))
    for target in _LINK.findall(prose):
        if not _SCHEME.match(target):
            yield target


def broken_links(page: Path) -> list[str]:
    """The page's relative links that lead to no file, folder or heading, with why."""
    broken = []
    for target in relative_links(page.read_text()):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no {destination}")
        elif (
            destination.suffix == ".md"
            and anchor
            and anchor not in anchors(destination.read_text())
        ):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    return broken


def _pages() -> list[Path]:
    return sorted({page for pattern in PAGES for page in ROOT.glob(pattern)})


@pytest.mark.parametrize("page", _pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)} has broken links: {broken}"


def test_the_readme_and_the_docs_pages_are_checked():
    checked = {str(page.relative_to(ROOT)) for page in _pages()}
    assert "README.md" in checked
    assert {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")} <= checked
    assert len([name for name in checked if name.startswith("docs/")]) > 1


def test_a_missing_file_a_missing_heading_and_a_good_link_are_told_apart(tmp_path: Path):
    tmp_path = tmp_path.resolve()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text('# The page\n\n## `format("x")`: a section\n')
    readme = tmp_path / "README.md"
    readme.write_text(
        "See [the\npage](docs/page.md), [its section](docs/page.md#formatx-a-section),\n"
        "[gone](docs/gone.md), [no such part](docs/page.md#nowhere), [top](#readme),\n"
        "[the web](https://example.com/x.md) and `[code](not/a/link.md)`.\n\n"
        "```python\n# Not a heading\n```\n\n# README\n"
    )
    assert broken_links(readme) == [
        f"docs/gone.md: no {tmp_path / 'docs' / 'gone.md'}",
        "docs/page.md#nowhere: no heading #nowhere in page.md",
    ]
    assert anchors(readme.read_text()) == {"readme"}
