"""Relative links in the README and docs/ lead somewhere: the file exists, and so does the
heading an ``#anchor`` names (GitHub's anchor for it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def prose(page: Path) -> str:
    """The page without code, where brackets are not links."""
    return _FENCE.sub("", page.read_text(encoding="utf-8"))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(h) for h in _HEADING.findall(prose(page))}


def links(page: Path) -> list[str]:
    return _LINK.findall(_CODE.sub("", prose(page)))


def test_the_pages_have_links_to_check():
    assert sum(len(links(page)) for page in PAGES) >= 10


def test_the_readme_points_at_the_guide():
    assert "docs/guide.md" in links(ROOT / "README.md")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
        elif resolved != ROOT and ROOT not in resolved.parents:
            broken.append(f"{target}: outside the repository")
    assert broken == []
