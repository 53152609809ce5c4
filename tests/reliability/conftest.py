"""Fixtures of the reliability suite, and the summary of every figure it measured."""

from __future__ import annotations

import json

import pytest

from tests.reliability.harness import RECORDED, RESULTS_DIR


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RECORDED:
        return
    terminalreporter.section("reliability figures")
    for name, figures in sorted(RECORDED.items()):
        terminalreporter.write_line(f"{name}: {json.dumps(figures, sort_keys=True)}")
    terminalreporter.write_line(f"(also in {RESULTS_DIR}/)")
