"""A screenshot of the explorer (notebooks/explore.py) on a real small sweep: docs/explorer.png.

    uv sync --extra explore            # marimo; playwright comes with the dev group
    apt-get install -y chromium        # Debian's Chromium: playwright downloads no browser
    uv run python benchmarks/explorer_screenshot.py [--experiments DIR] [--sweep sweeps/NAME]
                                                    [--out docs/explorer.png]

Without --experiments it first trains a small real sweep (seeds 1, 2 x use_mlm true, false x
optimizer adam, sgd on the embedded corpus, a small model for 150 steps: a few minutes on two
cores) into a temporary folder. Then it serves the app with `marimo run --headless` on a free
loopback port, opens it in headless Chromium, picks the sweep (the newest one, or --sweep),
waits for the summary table and the plots, and saves the screenshot.

The helpers (`serve`, `chromium`, `open_sweep`) are what tests/test_explore.py's browser test
drives the app with.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "explore.py"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SMALL_SWEEP = [
    "--multirun", "seed=1,2", "use_mlm=true,false", "optimizer=adam,sgd",
    "model.d_model=32", "model.n_heads=2", "model.n_layers=2", "model.d_ff=64",
    "data.max_length=64", "data.vocab_size=1000", "data.sample_rows=3000",
    "trainer.max_steps=150", "trainer.eval_every=25", "trainer.early_stopping=null",
    "runtime.progress_bar=false",
]  # fmt: skip


def free_port() -> int:
    """A TCP port nothing listens on now, on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_chromium() -> str | None:
    """The system's Chromium (Debian's `chromium`), or None."""
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    return None


@contextlib.contextmanager
def serve(experiments: str | Path, port: int | None = None, timeout: float = 120.0,
          log: Path | None = None) -> Iterator[str]:  # fmt: skip
    """`marimo run notebooks/explore.py --headless` on 127.0.0.1 over `experiments`; yields
    its URL once it answers, and stops it afterwards. RuntimeError (with its log) if it
    does not start."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/"
    log = log or Path(tempfile.mkstemp(prefix="marimo-", suffix=".log")[1])
    command = [sys.executable, "-m", "marimo", "run", str(NOTEBOOK), "--headless",
               "--host", "127.0.0.1", "--port", str(port), "--no-token",
               "--", "--experiments", str(experiments)]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"marimo exited {server.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"marimo did not answer on {url} in {timeout:.0f} s:\n"
                                   f"{log.read_text()}")  # fmt: skip
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextlib.contextmanager
def chromium(executable: str, width: int = 1400, height: int = 1000):
    """A page in headless Chromium (playwright driving the given browser: it downloads
    none). `--no-sandbox`: Chromium's sandbox refuses to start as root, as CI runs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox"])  # fmt: skip
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def open_sweep(page, url: str, label: str, timeout_ms: int = 120_000) -> None:
    """Open the app, pick the folder `label` (sweeps/NAME) in the folder picker, and wait
    until the summary table and a plot are on the page."""
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    page.get_by_text("Sweep or run folders").wait_for()
    page.get_by_text("Select...").first.click()
    page.get_by_role("option", name=label).click()
    page.keyboard.press("Escape")
    page.get_by_role("heading", name="Summary:").wait_for()
    page.locator("img").first.wait_for()


def train_small_sweep(experiments: Path) -> str:
    """SMALL_SWEEP into experiments/sweeps/<name>; returns `sweeps/<name>`."""
    name = time.strftime("%Y-%m-%d_%H-%M-%S") + "_mlm_optimizer"
    subprocess.run([sys.executable, "-m", "tokentango.train", *SMALL_SWEEP,
                    f"hydra.sweep.dir={experiments / 'sweeps' / name}",
                    f"runtime.experiments_dir={experiments}"], check=True, cwd=ROOT)  # fmt: skip
    return f"sweeps/{name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=Path, help="default: train a small sweep first")
    parser.add_argument("--sweep", help="the folder to pick (default: the newest sweep)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "explorer.png")
    parser.add_argument("--height", type=int, default=1900, help="page height in pixels")
    args = parser.parse_args(argv)
    executable = find_chromium()
    if executable is None:
        parser.error("no Chromium found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        experiments = args.experiments or Path(tmp)
        sweep = args.sweep
        if args.experiments is None:
            sweep = train_small_sweep(experiments)
        elif sweep is None:
            from tokentango.explore import list_folders

            sweeps = [f.label for f in list_folders(experiments) if f.kind == "sweeps"]
            if not sweeps:
                parser.error(f"no sweep folders under {experiments}/sweeps")
            sweep = sweeps[0]
        with serve(experiments) as url, chromium(executable, height=args.height) as page:
            open_sweep(page, url, sweep)
            page.wait_for_timeout(2000)  # the other plots and the checkpoint list
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
    print(f"screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
