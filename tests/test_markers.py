"""The rules of tests/conftest.py, checked on small suites run by pytest's own ``pytester``: a
test that uses a server fixture is marked ``services``; one that starts a server without the
marker fails; ``GRIDWATCH_REQUIRE_SERVICES`` stops a run with a missing server and turns skips
into failures. No server is started here."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch import _services

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text(encoding="utf-8")
INI = """
[pytest]
markers =
    slow: slow
    services: services
"""

SUITE = """
import pytest
from gridwatch import _services

def test_pure():
    assert 1 + 1 == 2

def test_uses_a_server_fixture(influxdb):
    assert influxdb.port

@pytest.mark.services
def test_marked_starts_nothing_here():
    pass

def test_starts_a_server_unmarked(tmp_path):
    _services.mosquitto(tmp_path / "m").start()
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_server_fixture_marks_the_test(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-m", "services", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_uses_a_server_fixture*",
                                 "*test_marked_starts_nothing_here*"])
    result.stdout.no_fnmatch_line("*test_pure*")
    result.stdout.no_fnmatch_line("*test_starts_a_server_unmarked*")


def test_unmarked_test_that_starts_a_server_fails(suite: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDWATCH_REQUIRE_SERVICES", raising=False)
    result = suite.runpytest("-m", "not services")
    result.assert_outcomes(passed=1, failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*starts mosquitto but is not marked @pytest.mark.services*"])


def test_required_services_stop_the_run_when_a_binary_is_missing(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str, *candidates: str) -> str:
        raise _services.ServiceError(f"{name} is not installed")

    monkeypatch.setattr(_services, "find_binary", missing)
    monkeypatch.setenv("GRIDWATCH_REQUIRE_SERVICES", "1")
    result = suite.runpytest("-m", "not services")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*servers are missing*", "*mosquitto is not installed*"])
    result.stdout.no_fnmatch_line("* passed*")  # no test ran

    monkeypatch.delenv("GRIDWATCH_REQUIRE_SERVICES")
    assert suite.runpytest("-m", "not services", "-k", "pure").ret == pytest.ExitCode.OK


def test_required_services_turn_skips_into_failures(pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_skip="""
        import pytest

        def test_skips():
            pytest.skip("no broker")
    """)
    monkeypatch.setenv("GRIDWATCH_REQUIRE_SERVICES", "0")
    pytester.runpytest().assert_outcomes(skipped=1)
    monkeypatch.setenv("GRIDWATCH_REQUIRE_SERVICES", "1")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*GRIDWATCH_REQUIRE_SERVICES forbids skips*no broker*"])
