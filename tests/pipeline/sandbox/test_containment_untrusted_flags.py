"""An untrusted workspace's config cannot make the build run programs: real gcc, real wrapper script."""

from __future__ import annotations

import json
from pathlib import Path

from cra.pipeline.config import load_config
from cra.pipeline.sandbox import check_change, compile_unit, flags_for
from cra.pipeline.sandbox.flags import restrict_untrusted
from cra.pipeline.sandbox.validation import CheckOptions

MARKER = "cra-test-wrapper-ran"
SOURCE = "int f(void) { return 0; }\n"
CHANGED = "int f(void) { return 1; }\n"


def _workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "x.sh").write_text(f'#!/bin/sh\necho {MARKER} >&2\nexec "$@"\n')
    (root / "m.c").write_text(SOURCE)
    (root / "cra.toml").write_text('[validation]\nflags = ["-wrapper", "sh,x.sh", "-std=c11"]\n')
    return root


def test_untrusted_config_wrapper_never_runs_and_trusted_honours_it(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    config = load_config(root)
    assert config.validation.flags == ["-wrapper", "sh,x.sh", "-std=c11"]
    options = CheckOptions(compiler=config.validation.compiler, flags=list(config.validation.flags), trusted=False)
    check = check_change(root, "m.c", CHANGED, options)
    assert check.ok, check.message
    untrusted = compile_unit(root, "m.c", CHANGED, flags=list(config.validation.flags), trusted=False)
    assert untrusted.ok and MARKER not in untrusted.stderr and "-wrapper" not in untrusted.flags
    trusted = compile_unit(root, "m.c", CHANGED, flags=list(config.validation.flags), trusted=True)
    assert trusted.ok and MARKER in trusted.stderr, trusted.stderr


def test_untrusted_compile_commands_and_compiler_are_not_honoured(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    (root / "cra.toml").unlink()
    (root / "compile_commands.json").write_text(json.dumps([{
        "directory": str(root), "file": "m.c",
        "arguments": ["gcc", "-wrapper", "sh,x.sh", "-DX=1", "-Iinc", "-c", "m.c", "-o", "m.o"]}]))
    assert flags_for(root, "m.c").flags == ["-DX=1", f"-I{root / 'inc'}"]
    assert "-wrapper" in flags_for(root, "m.c", trusted=True).flags
    # A config-named compiler (here: the wrapper script itself) is replaced by the default.
    untrusted = compile_unit(root, "m.c", CHANGED, compiler=str(root / "x.sh"), trusted=False)
    assert untrusted.ok and MARKER not in untrusted.stderr
    trusted = compile_unit(root, "m.c", CHANGED, trusted=True)
    assert trusted.ok and MARKER in trusted.stderr


def test_restrict_untrusted_keeps_only_safe_flags(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "inc").mkdir()
    flags = ["-Iinc", "-I/etc", "-isystem", str(root / "inc"), "-iquote", "/usr/include", "-DA=\"x y\"", "-U", "B",
             "-std=gnu11", "-Wall", "-Wl,-plugin,/x.so", "-Wp,-x", "-O2", "-g3", "-fno-common", "-fplugin=/x.so",
             "-fprofile-use=/x", "-B/tmp/evil", "-specs=/x.specs", "--sysroot=/", "@args.txt", "-o", "out",
             "-x", "c++", "-lm", "-L/usr/lib", "-include", "../outside.h", "other.c", "-save-temps"]
    build = restrict_untrusted("clang", flags, root, trusted=False)
    assert build.compiler == "gcc"
    assert build.flags == ["-Iinc", "-isystem", str(root / "inc"), "-DA=\"x y\"", "-U", "B", "-std=gnu11", "-Wall",
                           "-O2", "-g3", "-fno-common", "-lm"]
    assert "compiler=clang" in build.dropped and "-wrapper" not in build.flags
    assert restrict_untrusted("clang++", [], root, trusted=False).compiler == "g++"
    assert restrict_untrusted("clang", flags, root, trusted=True).flags == flags
