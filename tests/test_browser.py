"""The reports in a real browser: headless Chromium (Debian's package) driven by Playwright.

Each page is opened from disk with nothing else reachable: every image must decode, the console
must stay free of errors, no request may leave the file, and the first screen must show the
headline. Screenshots of the first screen go to ``$NPMLP_SCREENSHOTS`` when it is set, to be
looked at. Skipped, with the reason, only where Chromium or Playwright is missing (``.ci/run``
installs Chromium; the test extra brings Playwright, which here never downloads a browser).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from npmlp import demo as demo_module
from npmlp.errors import DataError
from npmlp.runs import DataSpec, run
from npmlp.training import TrainConfig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
                                                ".ci/run installs it)"),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install "
                                                                  "'npmlp[test]'")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh profile: no state from any earlier run
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, args=FLAGS,
                                                       headless=True, viewport=VIEWPORT)
        yield context
        context.close()


def open_report(browser: Any, path: Path, shot: str) -> dict[str, Any]:
    """Load ``path``; return what the page did: console errors, requests, images, the headline's box."""
    page = browser.new_page()
    seen: dict[str, list[str]] = {"errors": [], "requests": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    images = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)")
    box = page.locator("#headline").bounding_box()
    headline = page.locator("#headline").inner_text()
    if os.environ.get("NPMLP_SCREENSHOTS") and shot:
        folder = Path(os.environ["NPMLP_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{shot}.png"))
    return {**seen, "images": images, "box": box, "headline": headline, "page": page}


def check_page(found: dict[str, Any], path: Path) -> None:
    html = path.read_text(encoding="utf-8")
    assert found["errors"] == []
    others = [u for u in found["requests"] if not u.startswith("data:") and u != path.resolve().as_uri()]
    assert others == []  # nothing but the file itself: the page needs no network and no other file
    assert found["images"] == [True] * html.count('<img src="data:image/')
    box = found["box"]
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"]  # on the first screen


@pytest.fixture(scope="module")
def run_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run(TrainConfig(hidden=[8], epochs=15, lr=0.1), DataSpec("circles", n_samples=400, noise=0.05), out=out)
    return out / "report.html"


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    pytest.importorskip("sklearn")  # its 8x8 digits are the demo's image data here: no download, no files
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        real = demo_module.load_dataset

        def circles_only(name: str, **kw: Any) -> Any:
            if name != "circles":
                raise DataError(f"{name}: not looked for in this test")
            return real(name, **kw)

        mp.setattr(demo_module, "load_dataset", circles_only)
        path, _ = demo_module.run_demo(out, fast=True)
    return path


def test_a_runs_report_in_chromium(browser, run_report: Path) -> None:
    found = open_report(browser, run_report, "run-report")
    check_page(found, run_report)
    assert found["headline"].startswith("Test error") and len(found["images"]) == 2
    page = found["page"]
    history = page.locator("#history table")
    assert not history.is_visible()  # folded
    page.locator("#history summary").click()
    assert history.is_visible()
    page.close()


def test_the_demos_reports_in_chromium(browser, demo_report: Path) -> None:
    found = open_report(browser, demo_report, "demo-report")
    check_page(found, demo_report)
    assert "reproduced on this machine" in found["headline"] and "Gradient check PASSED" in found["headline"]
    assert len(found["images"]) == 8
    found["page"].close()
    tuned = demo_report.parent / "tuned" / "report.html"
    found = open_report(browser, tuned, "demo-tuned-report")
    check_page(found, tuned)
    assert found["headline"].startswith("Test error") and len(found["images"]) == 3
    found["page"].close()


def test_the_checks_catch_a_page_that_reaches_out(browser, tmp_path: Path) -> None:
    page_path = tmp_path / "bad.html"
    page_path.write_text('<!DOCTYPE html><html><body><div id="headline">x</div>'
                         '<img src="http://127.0.0.1:9/missing.png"><script>console.error("boom")</script>'
                         "</body></html>")
    found = open_report(browser, page_path, "")
    found["page"].close()
    assert "http://127.0.0.1:9/missing.png" in found["requests"] and found["images"] == [False]
    assert any("boom" in e for e in found["errors"])
    with pytest.raises(AssertionError):
        check_page(found, page_path)
