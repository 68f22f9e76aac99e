"""Headless Chromium for the report's layout tests: what a reader's 1400 x 900 window shows.

Chromium is Debian's package (`apt-get install chromium`; .ci/install-chromium.sh); without it the tests
that need it skip, except under CI=true, where they fail (CI installs it)."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

#: a reader's window (a 1440 x 900 laptop screen less the browser's frame)
WINDOW = (1400, 900)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

#: measures the report's scrolling content box once React has drawn it, into a <pre id="layout-probe">
PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const box = [...document.querySelectorAll("div")].find(
    d => d.classList.contains("h-screen") && d.classList.contains("overflow-auto"));
  const out = {found: !!box, innerHeight: window.innerHeight, innerWidth: window.innerWidth};
  if (box) {
    box.scrollTop = 0;
    const top = box.getBoundingClientRect().top, first = box.firstElementChild;
    const h1 = box.querySelector("h1");
    Object.assign(out, {scrollHeight: box.scrollHeight, clientHeight: box.clientHeight,
      contentTop: first.getBoundingClientRect().top - top, title: h1 ? h1.textContent.trim() : null,
      titleTop: h1 ? h1.getBoundingClientRect().top - top : null,
      alignItems: getComputedStyle(box).alignItems});
  }
  const pre = document.createElement("pre");
  pre.id = "layout-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 1500));
</script>"""


def chromium() -> str:
    """The browser's path; skips the test where there is none (fails under CI=true: CI installs it)."""
    path = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/install-chromium.sh installs it for CI")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:  # a new empty profile each time
        size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", size, *args],
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip


def home_page_layout(report: Path, work: Path) -> dict:
    """Where the report's home page content sits in its scrolling box, scrolled to the top, at ``WINDOW``."""
    probe = work / "layout-probe.html"
    page = report.read_text(errors="replace")
    at = page.rindex("</body>")  # the page's own: embedded tables carry theirs inside scripts, before it
    probe.write_text(page[:at] + PROBE + page[at:])
    proc = run(["--virtual-time-budget=15000", "--dump-dom", probe.as_uri()])
    m = re.search(r'<pre id="layout-probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no layout measured: {proc.stderr[-2000:]}"
    return json.loads(m[1].replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(report: Path, png: Path) -> None:
    run(["--virtual-time-budget=15000", f"--screenshot={png}", report.as_uri()])
