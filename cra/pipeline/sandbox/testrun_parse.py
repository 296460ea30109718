"""Per-test and per-case results from test runners' output: ctest, meson test, automake's harness, and the
case lines of Unity, cmocka and TAP inside one program's output."""

from __future__ import annotations

import json
import re

import msgspec

from cra.pipeline.sandbox.test_report import ProgramStatus

_CTEST_LINE = re.compile(
    r"^\s*\d+/\d+\s+Test\s+#\d+:\s+(?P<name>.+?)\s+\.*\s*(?P<mark>\*{3})?(?P<status>Passed|Failed|Timeout|Not Run|"
    r"Exception|Skipped|\w[\w ]*?)\b.*?[\d.]+\s+sec", re.M)
_CTEST_LIST = re.compile(r"^\s*Test\s+#\d+:\s+(\S.*?)\s*$", re.M)
_MESON_LINE = re.compile(
    r"^\s*\d+/\d+\s+(?P<name>\S.*?)\s+(?P<status>OK|FAIL|SKIP|TIMEOUT|EXPECTEDFAIL|UNEXPECTEDPASS|ERROR)\s+"
    r"[\d.]+s", re.M)
_AUTOMAKE_LINE = re.compile(r"^(?P<status>PASS|FAIL|XFAIL|XPASS|SKIP|ERROR): (?P<name>\S.*?)\s*$", re.M)
_UNITY_CASE = re.compile(r"^[^\s:]+:\d+:(\w+):(PASS|FAIL|IGNORE)", re.M)
_CMOCKA_CASE = re.compile(r"^\[\s+(OK|FAILED|ERROR)\s+\] (\w+)\s*$", re.M)
_TAP_CASE = re.compile(r"^(not ok|ok)\s+\d+(?:\s*-\s*|\s+)([^#\n]*?)\s*(#.*)?$", re.M)


class RunnerTest(msgspec.Struct):
    name: str
    status: ProgramStatus
    detail: str = ""


def listed_tests(listing: str) -> dict[str, str]:
    """Test name -> executable ("" when not known yet) from `ctest --show-only=json-v1` or
    `meson introspect --tests`; falls back to the names in `ctest -N` text."""
    try:
        data = json.loads(listing[listing.find("{") if listing.lstrip().startswith("{") else listing.find("["):])
    except ValueError:
        return {m.group(1): "" for m in _CTEST_LIST.finditer(listing)}
    tests = data.get("tests", []) if isinstance(data, dict) else data
    out: dict[str, str] = {}
    for test in tests if isinstance(tests, list) else []:
        if isinstance(test, dict) and isinstance(test.get("name"), str):
            command = test.get("command") or test.get("cmd") or [""]
            out[test["name"]] = str(command[0]) if isinstance(command, list) and command else ""
    return out


def ctest_results(output: str) -> list[RunnerTest]:
    out = []
    for m in _CTEST_LINE.finditer(output):
        status = m.group("status").strip()
        if status == "Passed":
            state: ProgramStatus = "passed"
        elif status == "Timeout":
            state = "timeout"
        elif status == "Not Run" or "Could not find" in status:
            state = "build_failed"
        elif status == "Skipped":
            state = "not_run"
        else:
            state = "failed"
        out.append(RunnerTest(name=m.group("name"), status=state, detail=status))
    return out


def meson_results(output: str) -> list[RunnerTest]:
    states: dict[str, ProgramStatus] = {"OK": "passed", "EXPECTEDFAIL": "passed", "SKIP": "not_run",
                                        "TIMEOUT": "timeout"}
    return [RunnerTest(name=m.group("name"), status=states.get(m.group("status"), "failed"), detail=m.group("status"))
            for m in _MESON_LINE.finditer(output)]


def automake_results(output: str) -> list[RunnerTest]:
    """`PASS: name` / `FAIL: name` lines of automake's test harness (XFAIL counts as passing, XPASS failing)."""
    states: dict[str, ProgramStatus] = {"PASS": "passed", "XFAIL": "passed", "SKIP": "not_run"}
    seen: dict[str, RunnerTest] = {}
    for m in _AUTOMAKE_LINE.finditer(output):
        seen[m.group("name")] = RunnerTest(name=m.group("name"), status=states.get(m.group("status"), "failed"),
                                           detail=m.group("status"))
    return list(seen.values())


def cases(output: str) -> tuple[list[str], list[str]]:
    """(passed, failed) case names a Unity, cmocka or TAP program printed (both empty when it printed none)."""
    passed: list[str] = []
    failed: list[str] = []

    def add(name: str, ok: bool) -> None:
        target, other = (passed, failed) if ok else (failed, passed)
        if name and name not in target:
            target.append(name)
        if not ok and name in other:
            other.remove(name)

    for name, status in _UNITY_CASE.findall(output):
        if status != "IGNORE":
            add(name, status == "PASS")
    for status, name in _CMOCKA_CASE.findall(output):
        add(name, status == "OK")
    if not passed and not failed:
        for status, name, directive in _TAP_CASE.findall(output):
            if "SKIP" not in directive.upper():
                add(name.strip(), status == "ok" or "TODO" in directive.upper())
    return passed, failed


_UNITY_SUMMARY = re.compile(r"^(\d+) Tests (\d+) Failures (\d+) Ignored", re.M)
_CMOCKA_PASSED = re.compile(r"^\[  PASSED  \] (\d+) test", re.M)
_CMOCKA_FAILED = re.compile(r"^\[  FAILED  \] (\d+) test", re.M)
_CTEST_SUMMARY = re.compile(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)")


def summary_counts(output: str, returncode: int | None, library: str | None = None) -> tuple[int, int]:
    """(passed, failed) from a test program's or runner's summary; falls back to the exit status."""
    if m := _CTEST_SUMMARY.search(output):
        failed, total = int(m.group(2)), int(m.group(3))
        return total - failed, failed
    unity = _UNITY_SUMMARY.findall(output)
    if unity and library != "cmocka":
        tests = sum(int(t) for t, _, _ in unity)
        failures = sum(int(f) for _, f, _ in unity)
        ignored = sum(int(i) for _, _, i in unity)
        crashed = 1 if returncode not in (0, None) and failures == 0 else 0
        return tests - failures - ignored, failures + crashed
    passed = sum(int(n) for n in _CMOCKA_PASSED.findall(output))
    failed = sum(int(n) for n in _CMOCKA_FAILED.findall(output))
    if passed or failed:
        return passed, failed + (1 if returncode not in (0, None) and failed == 0 else 0)
    return (1, 0) if returncode == 0 else (0, 1)
