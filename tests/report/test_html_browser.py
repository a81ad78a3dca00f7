"""The HTML report of a real run, loaded in headless Chromium: it renders, offline, with no JavaScript error.

Needs /usr/bin/chromium (Debian's `chromium`; `.ci/run` installs it). Without it the test
skips, except in CI (CI=true), where a missing browser is a failure. The screenshot is kept
under reports/ci-artifacts/ (or $RECSYS_ARTIFACTS_DIR) and its path is printed in the log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from recsys.report.html import SECTION_TITLES, write_html

pytestmark = [pytest.mark.slow, pytest.mark.ray]

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RECSYS_ARTIFACTS_DIR", REPO / "reports" / "ci-artifacts"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
# Chromium logs page console messages as `...:CONSOLE(line)] "message", source: ...`.
CONSOLE_ERROR = re.compile(r"Uncaught|:CONSOLE\(\d+\)\].*(error|Error)")


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {CHROMIUM} is missing: .ci/run installs it (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium); the browser test needs it")


def browse(chromium: Path, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Chromium on ``page`` with a fresh profile; ``extra`` picks the output (--dump-dom, --screenshot=...)."""
    return subprocess.run([str(chromium), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE_ERROR.search(line)]


def test_report_renders_in_headless_chromium(chromium, demo_run, add_tuning_rows, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    add_tuning_rows(run_dir)
    page = write_html(run_dir)

    dom = browse(chromium, page, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in dom.stdout, title
    for heading in ("Leaderboard: synthetic", "Metrics by segment: synthetic", "Significance: synthetic",
                    "Loss and validation curves", "Gradients: two_tower", "Findings", "Embedding health",
                    "Directed vs undirected search", "Before and after tuning"):
        assert heading in dom.stdout, heading
    assert 'data-rendered="yes"' in dom.stdout                       # the last script ran
    assert re.search(r'id="js-errors" data-count="0"', dom.stdout)   # window.onerror recorded nothing
    assert console_errors(dom.stderr) == []

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    taken = browse(chromium, page, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,7000",
                   "--hide-scrollbars")
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    assert console_errors(taken.stderr) == []
    with capsys.disabled():
        print(f"\nbrowser screenshot of the HTML report: {shot}")
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (7000, 1280)
    not_white = np.mean(np.any(pixels < 0.95, axis=-1))
    colours = len(np.unique((pixels[::7, ::7] * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert not_white > 0.05 and colours > 100, (not_white, colours)


def test_the_error_checks_catch_a_broken_page(chromium, tmp_path):
    """The same checks on a page whose script throws: they must fail it (so they can fail the report)."""
    broken = tmp_path / "broken.html"
    from recsys.report.html.page import page_html

    broken.write_text(page_html("broken", "", []).replace("</main>", "<script>no_such_function();</script></main>"))
    dom = browse(chromium, broken, tmp_path / "profile", "--dump-dom")
    assert 'id="js-errors" data-count="1"' in dom.stdout
    assert console_errors(dom.stderr), dom.stderr[-2000:]
