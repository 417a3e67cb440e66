"""The reliability table, written from the tests' own results: a pytest plugin.

A reliability test calls the `reliability` fixture's `record(fault=..., happened=...,
kept=...)` with what it observed (the exit code, the `error:` line, the status in
results.json, the checkpoints left). A row counts only if its test passed, so the table
cannot claim what the suite no longer shows: a failed or skipped test's rows are dropped and
the test is listed below the table instead. With `TT_RELIABILITY_OUT=<path>` (or
`--reliability-out <path>`) the session writes `docs/reliability.md`'s Markdown there at its
end; without either nothing is written, so the default suite is unchanged.
`benchmarks/reliability_table.py` runs the reliability test files this way.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

OUT_ENV = "TT_RELIABILITY_OUT"
COMMAND_ENV = "TT_RELIABILITY_COMMAND"  # the command named in the header (the script's own)
SECTIONS = ("bad input", "faults", "security")
# Each file's section unless a row says otherwise (the pickle tests say "security").
FILE_SECTIONS = {"test_errors.py": "bad input", "test_checkpoints.py": "bad input",
                 "test_tools.py": "bad input", "test_faults.py": "faults",
                 "test_interrupt.py": "faults", "test_kill.py": "faults"}  # fmt: skip
# Times in file names differ on every run; the table should not.
_TIMESTAMP = re.compile(r"\d{8}-\d{6}|\d{4}-\d{2}-\d{2}[_T ]\d{2}[-:]\d{2}[-:]\d{2}")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch's bold in its messages
MAX_CELL = 480  # characters; torch's advice after a failed load runs to several sentences


@dataclass(frozen=True)
class Row:
    section: str
    fault: str
    happened: str
    kept: str
    test: str


@dataclass
class Recorder:
    """What one test observed; handed to the test as the `reliability` fixture."""

    test: str
    default_section: str
    scrub: list[tuple[str, str]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def record(self, fault: str, happened: str, kept: str, section: str | None = None) -> None:
        """One row: `fault` is the fault or input, `happened` what the test saw happen
        (observed values only), `kept` what was left intact or written."""
        section = section or self.default_section
        if section not in SECTIONS:
            raise ValueError(f"section {section!r}: one of {', '.join(SECTIONS)}")
        self.rows.append(Row(section, self._clean(fault), self._clean(happened),
                             self._clean(kept), self.test))  # fmt: skip

    def _clean(self, text: str) -> str:
        """One line, with the session's temporary folder and the times in file names replaced,
        so regenerating the table changes it only where behaviour changed."""
        text = " ".join(_ANSI.sub("", str(text)).split())
        for real, shown in self.scrub:
            text = text.replace(real, shown)
        text = _TIMESTAMP.sub("<time>", text)
        return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


@dataclass
class Collected:
    rows: list[Row] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)  # tests that recorded rows but did not pass


_COLLECTED = pytest.StashKey[Collected]()
_RECORDER = pytest.StashKey[Recorder]()
_PASSED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability-out", metavar="PATH", default=None,
        help=f"write the reliability table (Markdown) here; or set {OUT_ENV}",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_COLLECTED] = Collected()


@pytest.fixture
def reliability(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The recorder of this test's reliability rows (kept only if the test passes)."""
    file_name = Path(str(request.node.path)).name
    recorder = Recorder(request.node.nodeid, FILE_SECTIONS.get(file_name, "faults"),
                        scrub=[(str(tmp_path_factory.getbasetemp()), "$TMP")])  # fmt: skip
    request.node.stash[_RECORDER] = recorder
    return recorder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep a test's rows once all its phases are done, and only if none failed or skipped."""
    report = yield
    recorder = item.stash.get(_RECORDER, None)
    if recorder is None or not recorder.rows:
        return report
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    elif report.when == "teardown":
        collected = item.config.stash[_COLLECTED]
        if item.stash.get(_PASSED, False) and report.passed:
            collected.rows.extend(recorder.rows)
        else:
            collected.failing.append(item.nodeid)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    out = config.getoption("--reliability-out", None) or os.environ.get(OUT_ENV)
    if not out:
        return
    out = Path(out).absolute()
    collected = config.stash[_COLLECTED]
    command = os.environ.get(COMMAND_ENV) or " ".join(
        ["pytest", *map(str, config.invocation_params.args)]
    )
    header = header_lines(command, config.rootpath, out)
    out.write_text(render(collected.rows, collected.failing, header))


def header_lines(command: str, root: Path, out: Path) -> list[str]:
    """How the table was made: the command, when, and at which commit (and whether files
    other than the table itself differed from it)."""
    exclude = [f":(exclude){out.relative_to(root)}"] if out.is_relative_to(root) else []
    git = ["git", "-C", str(root)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], text=True,
                                capture_output=True, timeout=30).stdout.strip()  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--",
                                ".", *exclude], text=True, capture_output=True,
                               timeout=30).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    commit = (commit or "unknown") + (" with uncommitted changes" if dirty else "")
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [f"Generated by `{command}` on {date} at commit {commit}, from the rows the "
            "tests recorded with what they observed; a row appears only if its test passed."]


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render(rows: list[Row], failing: list[str], header: list[str]) -> str:
    """The Markdown page: one table per section (bad input, faults, security), rows sorted
    by fault, then the tests whose rows were left out because they did not pass."""
    lines = ["# Reliability: each fault or bad input, what happened, what was kept", "",
             *header, ""]  # fmt: skip
    for section in SECTIONS:
        chosen = sorted((r for r in rows if r.section == section),
                        key=lambda r: (r.fault.lower(), r.test))  # fmt: skip
        if not chosen:
            continue
        lines += [f"## {section.capitalize()}", "",
                  "| fault or input | what happened (observed) | what was kept | test |",
                  "|---|---|---|---|"]  # fmt: skip
        for r in chosen:
            cells = [_cell(r.fault), _cell(r.happened), _cell(r.kept), f"`{r.test}`"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if failing:
        lines += ["## Not shown: these tests did not pass", "",
                  *(f"- `{test}`" for test in sorted(set(failing))), ""]  # fmt: skip
    return "\n".join(lines)
