"""The reliability table's plugin (tests/reliability.py): it writes only the rows of tests
that passed, lists the others, and writes nothing unless asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import Row, render

INNER_TESTS = '''
import pytest

def test_passes(reliability, tmp_path):
    reliability.record(fault="empty file", happened=f"exit 2: error: {tmp_path} is empty",
                       kept="no run folder")

def test_fails(reliability):
    reliability.record(fault="never shown", happened="exit 0", kept="nothing")
    assert False

def test_skips(reliability):
    reliability.record(fault="skipped row", happened="exit 0", kept="nothing")
    pytest.skip("not here")

def test_a_security_row(reliability):
    reliability.record(fault="a pickle | planted", happened="refused", kept="all",
                       section="security")
'''


def test_only_passed_tests_rows_reach_the_table(pytester: pytest.Pytester) -> None:
    """The pass/fail filtering through a real (in-process) pytest session."""
    pytester.makepyfile(test_inner=INNER_TESTS)
    out = pytester.path / "reliability.md"
    result = pytester.runpytest_inprocess("-p", "tests.reliability", "--reliability-out",
                                          str(out))  # fmt: skip
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    table = out.read_text()
    assert "| empty file | exit 2: error: $TMP/" in table  # the temporary folder scrubbed
    assert "never shown" not in table and "skipped row" not in table
    assert table.index("## Faults") < table.index("## Security")  # test_inner's: faults
    assert "a pickle \\| planted" in table
    failing = table.split("## Not shown: these tests did not pass")[1]
    assert "test_inner.py::test_fails" in failing and "test_inner.py::test_skips" in failing


def test_nothing_is_written_unless_asked(pytester: pytest.Pytester,
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("TT_RELIABILITY_OUT", raising=False)
    pytester.makepyfile(test_inner=INNER_TESTS)
    pytester.runpytest_inprocess("-p", "tests.reliability")
    assert sorted(p.name for p in pytester.path.iterdir() if p.suffix == ".md") == []


def test_rows_are_grouped_by_section_and_sorted_by_fault(tmp_path: Path) -> None:
    rows = [Row("faults", "b fault", "x", "y", "t::2"),
            Row("bad input", "z input", "x", "y", "t::1"),
            Row("faults", "a fault", "x", "y", "t::3")]  # fmt: skip
    lines = render(rows, [], ["header"]).splitlines()
    faults = [ln.split(" | ")[0] for ln in lines if ln.startswith("| ") and "fault" in ln]
    assert faults == ["| fault or input", "| fault or input", "| a fault", "| b fault"]
    assert lines.index("## Bad input") < lines.index("## Faults")
    assert "Not shown" not in "\n".join(lines)
