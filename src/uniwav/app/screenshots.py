"""Screenshots of the web page's tabs in a headless Chromium (Playwright driving the system browser,
nothing downloaded): for the demo report and the browser test."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

# flags that keep Chromium from reaching for the network at start (updates, sync, metrics)
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def find_browser() -> Optional[str]:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot_tabs(url: str, out_dir, executable: Optional[str] = None, tabs=("Transcribe", "Speak", "Tokens")) -> list[Path]:
    """Open ``url``, click each tab and save ``out_dir/<tab>.png``; returns the files written."""
    from playwright.sync_api import sync_playwright

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable or find_browser(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url, wait_until="networkidle")
        for tab in tabs:
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(500)
            path = out / f"{tab.lower()}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path)
        browser.close()
    return shots
