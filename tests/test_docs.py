"""The documentation: the site builds with ``mkdocs build --strict`` and loads nothing from the
network, every Python block of the README and the docs runs, included result regions match their
files (``mtrl_bench.docgen``), relative links resolve, and the README stays a front page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mtrl_bench import docgen

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
# A fenced block: its info string (language + attributes) and its body.
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def python_blocks(path: Path) -> list[dict]:
    """The ``python`` blocks of a page, in order: ``title="x.py"`` blocks are files to write,
    ``skip-test`` blocks are not run."""
    text = path.read_text()
    blocks = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip()
        if not info.startswith("python") or "skip-test" in info:
            continue
        title = re.search(r'title="([^"]+)"', info)
        line = text.count("\n", 0, m.start(2)) + 1
        blocks.append({"code": m.group(2), "line": line, "file": title and title.group(1)})
    return blocks


# Runs one page's blocks in order in one namespace, in the current (temporary) directory; the
# padding makes a traceback point at the page's own line numbers.
RUNNER = """
import json, sys
from pathlib import Path
sys.path.insert(0, ".")
page, blocks = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
namespace = {"__name__": "__main__"}
for block in blocks:
    if block["file"]:
        Path(block["file"]).write_text(block["code"])
    else:
        exec(compile("\\n" * (block["line"] - 1) + block["code"], page, "exec"), namespace)
"""

PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p)]


def test_pages_with_code_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES_WITH_CODE}
    assert {"README.md", "docs/tutorials/add-an-env.md", "docs/tutorials/add-an-agent.md"} <= names


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_blocks_run(page: Path, tmp_path: Path):
    blocks = tmp_path / "blocks.json"
    blocks.write_text(json.dumps(python_blocks(page)))
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(page.relative_to(ROOT)), str(blocks)],
        cwd=work, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_site_builds_strict_and_offline(tmp_path: Path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20 and (site / "api" / "stats" / "index.html").exists()
    # Fonts, scripts, styles and images come from the site itself, never from a CDN.
    remote = re.compile(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(?:https?:)?//[^"]*"')
    offenders = {p.name: remote.findall(p.read_text()) for p in pages}
    assert not {k: v for k, v in offenders.items() if v}
    # The API reference comes from the docstrings.
    assert "stratified" in (site / "api" / "stats" / "index.html").read_text()


def test_included_results_are_fresh(capsys):
    code = docgen.main(["--check", "--root", str(ROOT), str(ROOT / "README.md"), str(DOCS),
                        str(ROOT / "results" / "metaworld" / "README.md")])  # fmt: skip
    assert code == 0, capsys.readouterr().err


def test_docgen_finds_and_fixes_a_stale_region(tmp_path: Path):
    (tmp_path / "r.md").write_text("# T\n\n| a | b |\n|---|---|\n| x | 1 |\n| y | 2 |\n\ntext\n")
    page = tmp_path / "p.md"
    page.write_text('<!-- include: r.md table=1 rows="^\\| y" -->\n| a | b |\n<!-- end include -->\n')
    args = ["--root", str(tmp_path), str(page)]
    assert docgen.main(["--check", *args]) == 1
    assert docgen.main(["--write", *args]) == 0
    assert "| y | 2 |" in page.read_text() and "| x | 1 |" not in page.read_text()
    assert docgen.main(["--check", *args]) == 0
    page.write_text(page.read_text().replace("| y | 2 |", "| y | 3 |"))  # a hand-edited figure
    assert docgen.main(["--check", *args]) == 1
    page.write_text("<!-- include: missing.md -->\n<!-- end include -->\n")
    assert docgen.main(["--check", *args]) == 2


def test_docgen_shift_and_rows(tmp_path: Path):
    source = "# Title\n\n| m | v |\n|---|---|\n| a | 1 |\n| b | 2 |\n\nnote\n"
    (tmp_path / "t.md").write_text(source)
    out = docgen.render('t.md shift=2 rows="^\\| b"', tmp_path)
    assert out.splitlines() == ["### Title", "", "| m | v |", "|---|---|", "| b | 2 |", "", "note"]


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        text = FENCE.sub("", page.read_text())  # links inside code blocks are not links
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken


def test_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 160


def test_no_reference_outside_the_repository():
    # Spelled in pieces so that this pattern is not itself such a reference.
    pattern = re.compile("|".join([r"DESIGN " + "§", r"methods\.md", "research" + "/",
                                   r"\.\./" + "shared"]))
    hits = []
    for path in [*ROOT.glob("*.md"), *ROOT.glob("*.toml")]:
        hits += [f"{path.name}: {m.group()}" for m in pattern.finditer(path.read_text())]
    for folder in ("mtrl_bench", "envs", "agents", "baselines", "benchmarks", "experiments",
                   "tests", "docs", "results"):  # fmt: skip
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md") and path != Path(__file__):
                text = path.read_text()
                hits += [f"{path.relative_to(ROOT)}: {m.group()}" for m in pattern.finditer(text)]
    assert not hits


def test_results_readme_names_every_results_folder():
    """A reader who opens results/ finds every folder explained, with the command that made it."""
    text = (ROOT / "results" / "README.md").read_text()
    folders = sorted(p.name for p in (ROOT / "results").iterdir() if p.is_dir())
    assert folders and [f for f in folders if f"`{f}/`" not in text] == []
