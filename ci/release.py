#!/usr/bin/env python3
"""The release job's checks (standard library only: it runs in a plain Python image).

  release.py check TAG              the tag, the package version and every pin in the templates,
                                    examples, README and docs say the same release; exit 1 listing
                                    each one that does not
  release.py published INDEX FILE.. the package registry's simple index (PEP 503) lists every
                                    FILE: a re-run of the publish job after an upload went through
                                    (GitLab answers a re-upload with 400) counts as published

Run from the repository root. INDEX may carry credentials (https://user:token@host/...); they
are sent as HTTP Basic and never printed.
"""

from __future__ import annotations

import base64
import html.parser
import re
import sys
import urllib.parse
import urllib.request
from pathlib import Path

RELEASE_TAG = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
# Where a release is named in text: `hie-notify==X`, `hie-notify@X` (component include),
# `ref: X` (project include), `/-/raw/X/` (remote include), `.git@X` (pip from git).
PINS = re.compile(
    r"hie-notify==(?P<a>[0-9][^\s\"'`,)]*)"
    r"|hie-notify@(?P<b>[0-9][^\s\"'`,)]*)"
    r"|\bref: (?P<c>[0-9][^\s\"'`,)]*)"
    r"|/-/raw/(?P<d>[0-9][^/\s]*)/"
    r"|\.git@(?P<e>[0-9][^\s\"'`,)]*)"
)
PINNED_FILES = ("README.md", "docs", "templates", "ci-templates")


def _pins(root: Path) -> list[tuple[str, int, str]]:
    found = []
    for name in PINNED_FILES:
        base = root / name
        paths = sorted(base.rglob("*")) if base.is_dir() else [base]
        for path in paths:
            if path.suffix not in (".yml", ".yaml", ".md") or not path.is_file():
                continue
            for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
                for match in PINS.finditer(line):
                    version = next(v for v in match.groupdict().values() if v)
                    found.append((f"{path.relative_to(root)}:{number}", match.start(), version))
    return found


def check(tag: str, root: Path) -> list[str]:
    """Every way the tag, the package and the pins disagree ([] when they agree)."""
    problems = []
    if not RELEASE_TAG.match(tag):
        problems.append(f"tag {tag!r}: expected a release version X.Y.Z")
    # The [project] table's version (a regex: tomllib is not in Python 3.10).
    pyproject = (root / "pyproject.toml").read_text("utf-8")
    table = re.search(r"^\[project\]$(.*?)(?=^\[|\Z)", pyproject, re.M | re.S)
    found = re.search(r'^version = "([^"]*)"$', table[1] if table else "", re.M)
    version = found[1] if found else None
    if version != tag:
        problems.append(f"pyproject.toml: version is {version!r}, the tag is {tag!r}")
    init = (root / "hie_notify" / "__init__.py").read_text("utf-8")
    found = re.search(r'^__version__ = "([^"]*)"', init, re.M)
    if not found or found[1] != tag:
        problems.append(
            f"hie_notify/__init__.py: __version__ is {found[1] if found else None!r}, "
            f"the tag is {tag!r}"
        )
    classic = (root / "ci-templates" / "hie-notify.gitlab-ci.yml").read_text("utf-8")
    pinned = re.search(r'^  HIE_NOTIFY_VERSION: "([^"]*)"$', classic, re.M)
    if not pinned or pinned[1] != tag:
        problems.append(
            "ci-templates/hie-notify.gitlab-ci.yml: variables.HIE_NOTIFY_VERSION is "
            f"{pinned[1] if pinned else None!r}, the tag is {tag!r}"
        )
    component = (root / "templates" / "hie-notify.yml").read_text("utf-8")
    if "$[[ component.version ]]" not in component:
        problems.append(
            "templates/hie-notify.yml: does not use $[[ component.version ]]: its jobs would "
            "not run the release they were included at"
        )
    for where, _, pin in _pins(root):
        if pin != tag:
            problems.append(f"{where}: names release {pin}, the tag is {tag!r}")
    return problems


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self._in_a = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._in_a = True
            href = dict(attrs).get("href") or ""
            path = urllib.parse.urlsplit(href).path
            self.names.add(urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1]))

    def handle_endtag(self, tag: str) -> None:
        self._in_a = False

    def handle_data(self, data: str) -> None:
        if self._in_a:
            self.names.add(data.strip())


def _request(url: str) -> urllib.request.Request:
    """A GET of `url` with any user:password in it moved to a Basic Authorization header."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    if parts.username:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return request


def listed(index: str, files: list[str], project: str = "hie-notify") -> set[str]:
    """Which of `files` the simple index page of `project` under `index` links to."""
    page = index.rstrip("/") + "/" + re.sub(r"[-_.]+", "-", project).lower() + "/"
    with urllib.request.urlopen(_request(page), timeout=60) as response:
        parser = _Links()
        parser.feed(response.read().decode("utf-8", "replace"))
    return {Path(f).name for f in files} & parser.names


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "check":
        problems = check(argv[1], Path.cwd())
        for problem in problems:
            print(f"release check: {problem}", file=sys.stderr)
        if not problems:
            print(f"release check: tag, package version and pins all say {argv[1]}")
        return 1 if problems else 0
    if len(argv) >= 3 and argv[0] == "published":
        files = argv[2:]
        found = listed(argv[1], files)
        missing = sorted({Path(f).name for f in files} - found)
        for name in missing:
            print(f"release: {name} is not in the package registry", file=sys.stderr)
        if not missing:
            print(f"release: the package registry already has {', '.join(sorted(found))}")
        return 1 if missing else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
