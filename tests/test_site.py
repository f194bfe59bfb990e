"""The static leaderboard site, in a real headless Chromium (Debian's package) from file://.

Playwright drives the system browser through its executable path (no browser download). Where
Chromium is missing the browser test is skipped with the install command, unless
``MTRL_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs the package) makes it fail.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_bundle import make

from mtrl_bench import bundle as bundles
from mtrl_bench import site
from mtrl_bench.errors import UsageError

EVIL = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    for name, level, seed in (("alpha", 0.7, 1), ("beta", 0.3, 2), (EVIL, 0.5, 3), ("gamma", 0.9, 4)):
        bundles.write(make(name, level, range(3), seed), root / "bundles" / f"{seed}.json")
    return site.build_site([root / "bundles"], root / "out")


def test_site_files_escape_and_downloads(built: Path) -> None:
    out = built.parent
    page = (out / "toy-goal-line-v1.html").read_text()
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page.replace("https://example.org", "")
    csv = (out / "toy-goal-line-v1.csv").read_text().splitlines()
    assert csv[0].startswith("rank,agent,iqm [CI]") and len(csv) == 5
    assert [line.split(",")[1] for line in csv[1:3]] == ["gamma", "alpha"]
    assert "\\begin{tabular}" in (out / "toy-goal-line-v1.tex").read_text()
    assert (out / "toy-goal-line-v1-profile.svg").read_text().lstrip().startswith("<?xml")
    index = (out / "index.html").read_text()  # boards without entries are listed, not dropped
    empty = index.split('id="empty"')[1]
    assert "metaworld-mt10/v2" in empty and "toy-goal-line/v1" not in empty


def test_site_is_deterministic(built: Path, tmp_path: Path) -> None:
    again = site.build_site([built.parent.parent / "bundles"], tmp_path / "again")
    for path in sorted(built.parent.iterdir()):
        assert (again.parent / path.name).read_bytes() == path.read_bytes(), path.name


def test_site_refuses_a_bad_bundle_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.json").write_text('{"schema": "mtrl-bench/bundle"}')
    with pytest.raises(UsageError, match="x.json: bundle rejected"):
        site.build_site([tmp_path / "b"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_site_in_headless_chromium(built: Path, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("MTRL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
        pytest.skip("no Chromium: apt-get install chromium (CI sets MTRL_REQUIRE_BROWSER=1)")
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(user_agent="mtrl-bench-test")
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(built.as_uri())
        links = page.locator("#boards a")
        assert links.count() == 1
        links.first.click()
        page.wait_for_load_state()
        assert page.title().startswith("Toy goal line")

        def column(i: int) -> list[str]:
            return page.locator(f"#ranking tbody tr td:nth-child({i})").all_inner_texts()

        assert column(2)[0] == "gamma"  # ranked by IQM
        assert EVIL in column(2)  # shown as text ...
        page.locator("#ranking th[data-key=agent]").click()
        assert column(2) == sorted(column(2))
        page.locator("#ranking th[data-key=agent]").click()
        assert column(2) == sorted(column(2), reverse=True)
        page.locator("#ranking th[data-key=primary]").click()  # ascending by the number
        scores = [float(s.split()[0]) for s in column(3)]
        assert scores == sorted(scores) and column(2)[0] == "beta"
        assert page.locator("#improvement tbody tr").count() == 4
        page.screenshot(path=str(tmp_path / "board.png"), full_page=True)
        browser.close()
    assert dialogs == []  # ... and runs nothing
    assert (tmp_path / "board.png").stat().st_size > 10_000
