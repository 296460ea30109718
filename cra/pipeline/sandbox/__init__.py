"""Untrusted build/run: temp workspace copy, rlimits, no network, gcc diagnostics, test-framework detection."""

from cra.pipeline.sandbox.baseline import TestVerdict, baseline_report, judge
from cra.pipeline.sandbox.condense import condense
from cra.pipeline.sandbox.diagnostics import Diagnostic, new_warnings, parse_diagnostics
from cra.pipeline.sandbox.flags import (
    DEFAULT_FLAGS,
    CompileCommandsError,
    CompileFlags,
    flags_for,
    flags_from_compile_commands,
    restrict_untrusted,
)
from cra.pipeline.sandbox.frameworks import (
    TestFramework,
    TestResult,
    UntrustedCommand,
    detect_test_framework,
    run_generated_test,
    run_project_tests,
)
from cra.pipeline.sandbox.limits import Limits, RunResult, SandboxError
from cra.pipeline.sandbox.runner import (
    IsolationPlan,
    isolation_plan,
    make_sandbox_dir,
    remove_sandbox_dir,
    run_sandboxed,
)
from cra.pipeline.sandbox.test_report import ProgramResult, TestRunReport
from cra.pipeline.sandbox.testplan import TestPlan, detect_tests
from cra.pipeline.sandbox.testrun import run_tests
from cra.pipeline.sandbox.validate import CompileResult, compile_unit
from cra.pipeline.sandbox.validation import ChangeCheck, CheckOptions, check_change, compile_changes
from cra.pipeline.sandbox.workspace_copy import PathOutsideWorkspace, WorkspaceTooLarge, copy_workspace

__all__ = [
    "ChangeCheck", "CheckOptions", "ProgramResult", "TestPlan", "TestRunReport", "detect_tests",
    "DEFAULT_FLAGS", "CompileCommandsError", "CompileFlags", "CompileResult",
    "Diagnostic", "IsolationPlan", "Limits", "PathOutsideWorkspace", "RunResult", "SandboxError", "TestFramework",
    "TestResult", "UntrustedCommand", "WorkspaceTooLarge", "check_change", "compile_changes", "compile_unit",
    "condense", "copy_workspace", "detect_test_framework", "flags_for", "flags_from_compile_commands",
    "isolation_plan", "make_sandbox_dir", "new_warnings", "parse_diagnostics", "remove_sandbox_dir",
    "run_generated_test", "run_project_tests", "run_sandboxed", "run_tests",
    "TestVerdict", "baseline_report", "judge", "restrict_untrusted",
]
