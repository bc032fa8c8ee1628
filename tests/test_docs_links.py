"""No dead link in README.md or docs/**/*.md: relative links resolve to files or folders of the
repository, #anchors to headings of the target Markdown file, and http(s) links are well formed
(checked for form only: no network)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^\s)<>]*)>?(?:\s+\"[^\"]*\")?\s*\)"
)
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\".*\")?\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXPLICIT_ID = re.compile(r"\{\s*#([\w-]+)[^}]*\}\s*$")


def _prose_lines(text: str, keep_inline_code: bool = False) -> list[tuple[int, str]]:
    """(line number, line) outside fenced and indented code blocks, inline code removed unless
    keep_inline_code."""
    out: list[tuple[int, str]] = []
    in_fence = False
    prev_blank = True
    in_indented = False
    for no, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            prev_blank = False
            continue
        if in_fence:
            continue
        indented = line.startswith(("    ", "\t")) and line.strip() != ""
        if indented and (prev_blank or in_indented):
            in_indented = True
            continue
        if line.strip():
            in_indented = False
        prev_blank = line.strip() == ""
        out.append((no, line if keep_inline_code else INLINE_CODE.sub("", line)))
    return out


def _links(path: Path) -> list[tuple[int, str]]:
    found = []
    for no, line in _prose_lines(path.read_text(encoding="utf-8")):
        found += [(no, m.group(1)) for m in INLINE_LINK.finditer(line)]
        m = REF_DEF.match(line)
        if m:
            found.append((no, m.group(1)))
    return found


def _slugs(title: str) -> set[str]:
    """The anchors a heading gets: Python-Markdown's toc (MkDocs) and GitHub's rule."""
    m = EXPLICIT_ID.search(title)
    if m:
        return {m.group(1)}
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # link text only
    text = text.replace("`", "").replace("*", "")
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    toc = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", norm).strip().lower())
    github = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    return {toc, github}


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose_lines(path.read_text(encoding="utf-8"), keep_inline_code=True):
        m = HEADING.match(line)
        if not m:
            continue
        for slug in _slugs(m.group(2)):
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
            anchors.add(f"{slug}_{n}")  # Python-Markdown's suffix for repeated headings
    return anchors


def dead_links(page: Path) -> list[str]:
    """Every broken link of one Markdown page, as 'page:line: target (why)'."""
    bad = []
    for no, target in _links(page):
        where = f"{page.relative_to(ROOT)}:{no}: {target}"
        if not target:
            bad.append(f"{where} (empty link)")
            continue
        url = urlparse(target)
        if url.scheme in ("http", "https"):
            if not url.netloc or "." not in url.netloc or " " in target:
                bad.append(f"{where} (malformed URL)")
            continue
        if url.scheme == "mailto":
            continue
        if url.scheme or target.startswith("/"):
            bad.append(f"{where} (absolute or unknown scheme: use a relative path)")
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not dest.exists():
            bad.append(f"{where} (no such file)")
            continue
        if ROOT not in dest.parents and dest != ROOT:
            bad.append(f"{where} (outside the repository)")
            continue
        if anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{where} (no heading #{anchor} in {dest.relative_to(ROOT)})")
    return bad


def test_the_pages_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/options.md", "docs/problems.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_dead_links(page):
    assert dead_links(page) == []


def test_a_broken_link_is_caught(tmp_path, monkeypatch):
    """The checker itself: a missing file, a missing heading and a malformed URL are reported;
    links in code are not read."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Title\n\n## Some `code` heading\n")
    page = tmp_path / "docs" / "a.md"
    page.write_text(
        "[ok](b.md) [ok](b.md#some-code-heading) [ok](#top) [ok](https://example.org/x)\n"
        "# Top\n\n"
        "[gone](c.md) [bad anchor](b.md#nothing) [bad url](https://nodot)\n\n"
        "`[in code](nowhere.md)`\n\n    [indented code](nowhere.md)\n\n"
        "```\n[fenced](nowhere.md)\n```\n"
    )
    bad = dead_links(page)
    assert len(bad) == 3, bad
    assert "c.md (no such file)" in bad[0]
    assert "no heading #nothing" in bad[1]
    assert "malformed URL" in bad[2]
