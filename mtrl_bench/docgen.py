"""Fill the generated regions of Markdown files from committed result files.

Figures in the README and the documentation are never typed by hand: a region between

    <!-- include: results/minigrid/mt3/table.md table=1 -->
    <!-- end include -->

is replaced by the named file's content (paths are relative to the repository root, ``--root``).
Options, all optional:

- ``table=N``: only the N-th Markdown table of the file (1-based), without the text around it;
- ``rows=REGEX``: in every table kept, only the rows matching ``REGEX`` (header kept);
- ``shift=N``: demote the file's headings by N levels (a table file's ``# title`` inside a page).

``python -m mtrl_bench.docgen --check README.md docs/`` exits 1 when a region differs from what
its file gives (a result file changed, or someone edited the region by hand); ``--write``
rewrites the regions. Directories are searched for ``*.md`` recursively. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

_START = re.compile(r"^<!-- include: (?P<args>.+?) -->\s*$")
_END = "<!-- end include -->"


class DocgenError(Exception):
    """A malformed region or a missing source file; reported as one line."""


def _tables(lines: list[str]) -> list[list[str]]:
    """The Markdown tables of ``lines``: maximal runs of lines that start with ``|``."""
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def _filter_rows(table: list[str], pattern: re.Pattern[str]) -> list[str]:
    return table[:2] + [row for row in table[2:] if pattern.search(row)]


def render(args: str, root: Path) -> str:
    """The text a region with these marker arguments holds (no surrounding blank lines)."""
    try:
        path, *opts = shlex.split(args)
    except ValueError as e:
        raise DocgenError(f"bad include arguments {args!r}: {e}") from None
    options: dict[str, str] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or key not in ("table", "rows", "shift"):
            raise DocgenError(f"unknown include option {opt!r} (table=N, rows=REGEX, shift=N)")
        options[key] = value
    source = root / path
    if not source.is_file():
        raise DocgenError(f"included file {path} does not exist")
    lines = source.read_text().strip("\n").splitlines()
    pattern = re.compile(options["rows"]) if "rows" in options else None
    if "table" in options:
        tables = _tables(lines)
        n = int(options["table"])
        if not 1 <= n <= len(tables):
            raise DocgenError(f"{path} has {len(tables)} tables, no table={n}")
        lines = _filter_rows(tables[n - 1], pattern) if pattern else tables[n - 1]
    elif pattern:
        out, i = [], 0
        for table in _tables(lines):  # replace each table in place, keep the text between
            start = lines.index(table[0], i)
            out += lines[i:start] + _filter_rows(table, pattern)
            i = start + len(table)
        lines = out + lines[i:]
    shift = int(options.get("shift", 0))
    if shift:
        lines = ["#" * shift + line if re.match(r"#+ ", line) else line for line in lines]
    return "\n".join(lines)


def fill(text: str, root: Path) -> str:
    """``text`` with every include region regenerated."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _START.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        try:
            end = lines.index(_END, i + 1)
        except ValueError:
            raise DocgenError(f"line {i + 1}: include without '{_END}'") from None
        out += [lines[i], "", render(match["args"], root), "", _END]
        i = end + 1
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def markdown_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.rglob("*.md"))
        elif path.is_file():
            files.append(path)
        else:
            raise DocgenError(f"{path} does not exist")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtrl_bench.docgen", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 if a region is stale")
    mode.add_argument("--write", action="store_true", help="rewrite stale regions")
    parser.add_argument("paths", nargs="+", type=Path, help="Markdown files or directories")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    args = parser.parse_args(argv)
    stale = []
    try:
        for path in markdown_files(args.paths):
            text = path.read_text()
            try:
                new = fill(text, args.root)
            except DocgenError as e:
                raise DocgenError(f"{path}: {e}") from None
            if new != text:
                stale.append(path)
                if args.write:
                    path.write_text(new)
    except DocgenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in stale:
        print(f"{'updated' if args.write else 'stale'}: {path}", file=sys.stderr)
    if stale and args.check:
        print("run `python -m mtrl_bench.docgen --write README.md docs/`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
