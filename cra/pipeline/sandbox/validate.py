"""Compile one changed translation unit in a sandboxed copy of the workspace."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from cra.pipeline.sandbox.diagnostics import Diagnostic, new_errors, new_warnings, parse_diagnostics
from cra.pipeline.sandbox.flags import flags_for, outside_paths, rebase_flags, restrict_untrusted
from cra.pipeline.sandbox.limits import Limits, RunResult
from cra.pipeline.sandbox.runner import make_sandbox_dir, remove_sandbox_dir, run_sandboxed
from cra.pipeline.sandbox.workspace_copy import copy_workspace, relative_inside

COMPILE_LIMITS = Limits(cpu_seconds=30, wall_seconds=60.0, memory_mb=2048, max_processes=32,
                        max_output_bytes=512 * 1024, max_file_bytes=256 * 1024 * 1024)
WORK_DIR = ".cra-work"  # inside the sandbox copy: object files land here, never next to sources


class CompileResult(msgspec.Struct):
    """ok: the changed text compiled without errors. new_warnings / new_errors: those the original text did not
    have; baseline_errors: the errors of the original text (the unit may not compile in the sandbox at all, e.g.
    without a header the project's build generates)."""

    ok: bool
    diagnostics: list[Diagnostic]
    new_warnings: list[Diagnostic]
    stderr: str
    seconds: float
    flags: list[str] = []
    killed_reason: str | None = None
    new_errors: list[Diagnostic] = []
    baseline_errors: list[Diagnostic] = []


def _compile(compiler: str, flags: list[str], rel: Path, sandbox: Path, limits: Limits, syntax_only: bool,
             readonly: list[str]) -> RunResult:
    mode = ["-fsyntax-only"] if syntax_only else ["-c", "-o", f"{WORK_DIR}/unit.o"]
    argv = [compiler, *flags, "-fdiagnostics-color=never", *mode, rel.as_posix()]
    return run_sandboxed(argv, sandbox, limits, readonly_paths=readonly)


def compile_unit(
    workspace_root: str | Path, path: str | Path, new_text: str, *, compiler: str = "gcc",
    flags: list[str] | None = None, limits: Limits = COMPILE_LIMITS, syntax_only: bool = True,
    compare_original: bool = True, trusted: bool = False,
) -> CompileResult:
    """Compile `path` with `new_text` in a temp copy of the workspace.

    flags: None = compile_commands.json or defaults (see flags.flags_for). With compare_original, the original
    file is compiled first so that `new_warnings` lists only warnings the edit introduced. Not `trusted`: the
    compiler is the default one and only safe flags are kept (flags.restrict_untrusted), whatever the caller
    passes; trusted: include directories the flags name outside the workspace are visible read-only.
    """
    started = time.monotonic()
    root = Path(workspace_root).resolve()
    rel = relative_inside(root, path)
    chosen = list(flags) if flags is not None else flags_for(root, rel, trusted=trusted).flags
    build = restrict_untrusted(compiler, chosen, root, trusted=trusted)
    compiler, chosen = build.compiler, build.flags
    readonly = outside_paths(chosen, root) if trusted else []
    sandbox = make_sandbox_dir()
    try:
        copy_workspace(root, sandbox)
        (sandbox / WORK_DIR).mkdir(exist_ok=True)
        sandbox_flags = rebase_flags(chosen, root, sandbox)
        before: list[Diagnostic] = []
        original = root / rel
        if compare_original and original.is_file():
            first = _compile(compiler, sandbox_flags, rel, sandbox, limits, syntax_only, readonly)
            before = parse_diagnostics(first.stderr, sandbox)
        target = sandbox / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(new_text)
        result = _compile(compiler, sandbox_flags, rel, sandbox, limits, syntax_only, readonly)
        diags = parse_diagnostics(result.stderr, sandbox)
        stderr = result.stderr.replace(str(sandbox) + "/", "")
        if result.returncode == 127 and not diags:
            stderr = stderr or f"compiler {compiler!r} could not be started"
        ok = result.returncode == 0 and result.killed_reason is None and not any(d.severity == "error" for d in diags)
        return CompileResult(
            ok=ok, diagnostics=diags, new_warnings=new_warnings(before, diags), stderr=stderr,
            seconds=round(time.monotonic() - started, 4), flags=chosen, killed_reason=result.killed_reason,
            new_errors=new_errors(before, diags), baseline_errors=[d for d in before if d.severity == "error"],
        )
    finally:
        remove_sandbox_dir(sandbox)
