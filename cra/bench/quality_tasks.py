"""Tasks of `cra bench quality`, built from real C code with its own C tests.

A library is a registry package (a PyPI sdist here) holding C units, each with a test program of its own. A task
names one function of one unit: it is blanked (body replaced by a stub), the unit's real tests must then fail
(tasks where they still pass are dropped), and an attempt is judged by building and running those same tests in
the sandbox with plain gcc. Nothing of the package is kept in the repository beyond the manifest below.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import msgspec

from cra.pipeline.context import parse_source
from cra.pipeline.context.symbols import FUNCTION, Symbol
from cra.pipeline.sandbox import Limits, compile_unit, run_generated_test, run_project_tests
from cra.pipeline.sandbox.limits import SandboxError

SRC_DIR = "src"
TEST_DIR = "tests"
JUDGE_LIMITS = Limits(cpu_seconds=20, wall_seconds=60.0, memory_mb=1024, max_processes=32,
                      max_output_bytes=256 * 1024)


class QualityError(Exception):
    """The benchmark cannot build or judge its tasks (download failed, a manifest entry does not fit the code)."""


class Unit(msgspec.Struct, frozen=True):
    source: str  # path of the C unit inside the library's source root
    test: str  # path of its own test program (defines main) inside the source root


class Library(msgspec.Struct, frozen=True):
    name: str
    package: str  # registry name
    version: str
    registry: str  # "pypi"
    archive_root: str  # folder inside the extracted archive that holds the sources
    headers: list[str]  # globs (relative to the source root) of the headers every unit may include
    flags: list[str]  # gcc flags the library's own build uses for its tests
    units: list[Unit]

    def unit(self, source: str) -> Unit:
        for unit in self.units:
            if unit.source == source:
                return unit
        raise QualityError(f"{self.name}: no unit {source!r} in the manifest")


class TaskSpec(msgspec.Struct, frozen=True):
    kind: str  # "implement" | "tests"
    library: str
    source: str  # the unit (Unit.source)
    function: str

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.library}:{Path(self.source).name}:{self.function}"


PYCRYPTODOME = Library(
    name="pycryptodome",
    package="pycryptodome",
    version="4.4.0",
    registry="pypi",
    archive_root="pycryptodome-4.4.0/src",
    headers=["*.h"],
    # As the package's own test CMakeLists defines them (minus the sanitizers), for x86-64 Linux.
    flags=["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-DNO_CPYTHON_MODULE", "-DSTATIC=", "-DHAVE_STDINT_H",
           "-DHAVE_UINT128", "-DSYS_BITS=64", "-DPYCRYPTO_LITTLE_ENDIAN", "-DHAVE_POSIX_MEMALIGN", "-O1"],
    # chacha20.c is left out: it defines a main (under #ifdef) so the sandbox does not take it as library code.
    units=[Unit("raw_ctr.c", "test/test_raw_ctr.c"), Unit("Salsa20.c", "test/test_salsa20.c"),
           Unit("pkcs1_decode.c", "test/test_pkcs1.c"), Unit("mod25519.c", "test/test_mod25519.c")],
)

LIBRARIES: dict[str, Library] = {PYCRYPTODOME.name: PYCRYPTODOME}

# Interleaved across units so that the first N tasks are a mix. Functions whose name is defined more than once
# (per-ISA variants under #if) are left out: the blanked definition must be the one that is compiled.
IMPLEMENT_TASKS: list[TaskSpec] = [
    TaskSpec("implement", "pycryptodome", "raw_ctr.c", "add_be"),
    TaskSpec("implement", "pycryptodome", "Salsa20.c", "set_next_counter"),
    TaskSpec("implement", "pycryptodome", "pkcs1_decode.c", "safe_select_idx"),
    TaskSpec("implement", "pycryptodome", "mod25519.c", "hex2bin"),
    TaskSpec("implement", "pycryptodome", "raw_ctr.c", "add_le"),
    TaskSpec("implement", "pycryptodome", "Salsa20.c", "get_next_counter"),
    TaskSpec("implement", "pycryptodome", "pkcs1_decode.c", "propagate_ones"),
    TaskSpec("implement", "pycryptodome", "mod25519.c", "bin2hex"),
    TaskSpec("implement", "pycryptodome", "raw_ctr.c", "xor_key_stream"),
    TaskSpec("implement", "pycryptodome", "Salsa20.c", "xor_keystream"),
    TaskSpec("implement", "pycryptodome", "pkcs1_decode.c", "set_if_match"),
    TaskSpec("implement", "pycryptodome", "mod25519.c", "add32"),
    TaskSpec("implement", "pycryptodome", "Salsa20.c", "check_length"),
    TaskSpec("implement", "pycryptodome", "mod25519.c", "cswap"),
    TaskSpec("implement", "pycryptodome", "Salsa20.c", "advance_counter"),
    TaskSpec("implement", "pycryptodome", "pkcs1_decode.c", "safe_search"),
]
# Tests are written in a separate file, so the function must be callable from it: these helpers are `STATIC`,
# which the package's test build defines away (`static` ones cannot be tested from outside). Interleaved across
# units, like the implement tasks.
TESTS_TASKS: list[TaskSpec] = [
    TaskSpec("tests", "pycryptodome", "pkcs1_decode.c", "safe_select_idx"),
    TaskSpec("tests", "pycryptodome", "raw_ctr.c", "add_be"),
    TaskSpec("tests", "pycryptodome", "mod25519.c", "add32"),
    TaskSpec("tests", "pycryptodome", "pkcs1_decode.c", "propagate_ones"),
    TaskSpec("tests", "pycryptodome", "raw_ctr.c", "add_le"),
    TaskSpec("tests", "pycryptodome", "mod25519.c", "cswap"),
    TaskSpec("tests", "pycryptodome", "pkcs1_decode.c", "set_if_match"),
    TaskSpec("tests", "pycryptodome", "mod25519.c", "convert_le8_to_le25p5"),
    TaskSpec("tests", "pycryptodome", "pkcs1_decode.c", "safe_search"),
    TaskSpec("tests", "pycryptodome", "pkcs1_decode.c", "safe_select"),
]


# ---- obtaining the code ------------------------------------------------------------------------------------------
def obtain(library: Library, cache_dir: str | Path) -> Path:
    """The library's source root, downloaded from its registry into `cache_dir` on first use."""
    cache = Path(cache_dir).expanduser()
    root = cache / library.archive_root
    if root.is_dir():
        return root
    if library.registry != "pypi":
        raise QualityError(f"{library.name}: registry {library.registry!r} is not supported")
    cache.mkdir(parents=True, exist_ok=True)
    spec = f"{library.package}=={library.version}"
    archives = _archives(cache, library)
    if not archives:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec,
                               "-d", str(cache)], capture_output=True, text=True)
        archives = _archives(cache, library)
        if done.returncode != 0 or not archives:
            raise QualityError(f"cannot download {spec} from PyPI: {(done.stderr or done.stdout)[-600:]}")
    with tarfile.open(archives[0]) as archive:
        archive.extractall(cache, filter="data")
    if not root.is_dir():
        raise QualityError(f"{archives[0]}: has no folder {library.archive_root!r}")
    return root


def _archives(cache: Path, library: Library) -> list[str]:
    stem = f"{library.package.replace('-', '_')}-{library.version}"
    return sorted({*glob.glob(str(cache / f"{stem}.tar.gz")),
                   *glob.glob(str(cache / f"{library.package}-{library.version}.tar.gz"))})


# ---- one task's workspace ----------------------------------------------------------------------------------------
class TaskWorkspace(msgspec.Struct):
    """A temp project: src/<unit> + the library headers, tests/<its test program>. `blanked` is on disk."""

    spec: TaskSpec
    root: str
    unit_rel: str  # "src/Salsa20.c"
    original: str
    blanked: str
    flags: list[str]

    @property
    def unit_path(self) -> str:
        return str(Path(self.root) / self.unit_rel)

    def test_command(self) -> str:
        """The same build the judge does, as a shell command (for the pipeline's own validation step)."""
        test = next(p for p in sorted((Path(self.root) / TEST_DIR).glob("*.c")))
        flags = " ".join(self.flags)
        return (f"gcc {flags} -I{SRC_DIR} -o .cra-work/unit_tests {TEST_DIR}/{test.name} {self.unit_rel} -lm "
                f"&& ./.cra-work/unit_tests")


def build_workspace(spec: TaskSpec, library: Library, source_root: str | Path, work_dir: str | Path) -> TaskWorkspace:
    """Copy the unit, its test program and the library headers into `work_dir`, and blank the function there."""
    source_root = Path(source_root)
    unit = library.unit(spec.source)
    root = Path(work_dir)
    (root / SRC_DIR).mkdir(parents=True, exist_ok=True)
    (root / TEST_DIR).mkdir(parents=True, exist_ok=True)
    for pattern in library.headers:
        for header in sorted(source_root.glob(pattern)):
            if header.is_file():
                shutil.copy2(header, root / SRC_DIR / header.name)
    for needed in (unit.source, unit.test):
        if not (source_root / needed).is_file():
            raise QualityError(f"{library.name}: {needed} is not in {source_root}")
    shutil.copy2(source_root / unit.test, root / TEST_DIR / Path(unit.test).name)
    original = (source_root / unit.source).read_text(errors="surrogateescape")
    blanked = blank_function(original, spec.function, path=unit.source)
    unit_rel = f"{SRC_DIR}/{Path(unit.source).name}"
    (root / unit_rel).write_text(blanked if spec.kind == "implement" else original, errors="surrogateescape")
    return TaskWorkspace(spec=spec, root=str(root), unit_rel=unit_rel, original=original, blanked=blanked,
                         flags=list(library.flags))


def find_function(text: str, name: str, *, path: str = "unit.c") -> Symbol:
    """The single definition of `name` in `text` (several definitions, e.g. per-ISA variants, are refused)."""
    index = parse_source(path, text.encode("utf-8", errors="surrogateescape"))
    matches = [s for s in index.symbols if s.kind == FUNCTION and s.name == name]
    if not matches:
        raise QualityError(f"{path}: no definition of {name!r}")
    if len(matches) > 1:
        raise QualityError(f"{path}: {name!r} is defined {len(matches)} times; pick a function defined once")
    return matches[0]


def stub_body(symbol: Symbol, source: bytes) -> str:
    """`{ return 0; }` (a placeholder the pipeline recognises as a stub), or `{ }` for a void function."""
    head = source[symbol.start_byte:symbol.body_start_byte].decode("utf-8", errors="replace")
    name_at = head.find(symbol.name)
    before = " ".join(head[:name_at].split())
    returns_void = before.split()[-1:] == ["void"] and "*" not in before
    return "{\n}" if returns_void else "{\n    return 0;\n}"


def blank_function(text: str, name: str, *, path: str = "unit.c") -> str:
    source = text.encode("utf-8", errors="surrogateescape")
    symbol = find_function(text, name, path=path)
    blanked = source[:symbol.body_start_byte] + stub_body(symbol, source).encode() + source[symbol.body_end_byte:]
    return blanked.decode("utf-8", errors="surrogateescape")


def splice_function(text: str, name: str, new_definition: str, *, path: str = "unit.c") -> str:
    """`text` with the whole definition of `name` replaced by `new_definition`."""
    source = text.encode("utf-8", errors="surrogateescape")
    symbol = find_function(text, name, path=path)
    spliced = source[:symbol.start_byte] + new_definition.strip().encode() + source[symbol.end_byte:]
    return spliced.decode("utf-8", errors="surrogateescape")


# ---- judging ------------------------------------------------------------------------------------------------------
class Judgement(msgspec.Struct):
    compiled: bool
    passed: bool
    detail: str = ""


def judge_unit(ws: TaskWorkspace, text: str) -> Judgement:
    """Compile the unit with `text`, then build and run the unit's own tests against it (plain gcc, sandboxed)."""
    compiled = compile_unit(ws.root, ws.unit_rel, text, flags=ws.flags, limits=JUDGE_LIMITS,
                            compare_original=False)
    if not compiled.ok:
        errors = [d.message for d in compiled.diagnostics if d.severity == "error"][:2]
        return Judgement(compiled=False, passed=False, detail="; ".join(errors) or compiled.stderr[-300:])
    tests = run_project_tests(ws.root, {ws.unit_rel: text}, limits=JUDGE_LIMITS, flags=ws.flags)
    if tests.ok is None:
        raise QualityError(f"{ws.spec.id}: the sandbox found no test program in {ws.root}")
    return Judgement(compiled=True, passed=bool(tests.ok), detail="" if tests.ok else tests.output[-300:])


def judge_generated_tests(ws: TaskWorkspace, test_text: str) -> tuple[Judgement, bool | None]:
    """Generated tests are good when they compile, pass on the original implementation and fail on the blanked
    one. Returns the judgement on the original and whether the blanked one was caught (None: not tried)."""
    try:
        on_original = run_generated_test(ws.root, [ws.unit_rel], test_text, changed={ws.unit_rel: ws.original},
                                         limits=JUDGE_LIMITS, flags=ws.flags)
    except SandboxError as exc:
        return Judgement(compiled=False, passed=False, detail=str(exc)), None
    compiled = "build failed" not in on_original.output
    if not on_original.ok:
        return Judgement(compiled=compiled, passed=False, detail=on_original.output[-300:]), None
    on_blanked = run_generated_test(ws.root, [ws.unit_rel], test_text, changed={ws.unit_rel: ws.blanked},
                                    limits=JUDGE_LIMITS, flags=ws.flags)
    caught = not on_blanked.ok
    return Judgement(compiled=True, passed=caught,
                     detail="" if caught else "the tests also pass on the blanked (stub) implementation"), caught


def confirm(ws: TaskWorkspace) -> str | None:
    """None when the task is usable: the original passes the unit's tests and the blanked version fails them.
    Otherwise the reason to drop it."""
    original = judge_unit(ws, ws.original)
    if not original.passed:
        return f"the original code does not pass its own tests: {original.detail}"
    blanked = judge_unit(ws, ws.blanked)
    if blanked.passed:
        return "the unit's tests still pass with the function blanked (they do not exercise it)"
    return None


def default_cache_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "cra", "bench", "quality")
