"""The C language standard a project's own build compiles with, read from its build files (nothing is run).

cra's own gcc commands default to `-std=c11`; a project that builds with `-std=c89` rejects code (a `for (int i
...)` loop, say) that c11 accepts. Only the `-std=` value is taken from the workspace, so reading an untrusted
project's build files this way is safe: the value is checked against gcc's list of C standards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

# gcc's C dialects (not C++): c89 ... c23, gnu89 ... gnu23, iso9899:1990 ...
C_STANDARD = re.compile(r"(?:c|gnu)(?:89|90|99|9x|11|1x|17|18|2x|23)|iso9899:(?:1990|199409|1999|2011|2017|2018)")
_STD_FLAG = re.compile(r"(?<![\w-])-std=([\w:]+)")
_CMAKE_STANDARD = re.compile(r"(?<![A-Za-z0-9])(?:CMAKE_)?C_STANDARD\s+\"?(\d+)\b")
_CMAKE_FEATURE = re.compile(r"\bc_std_(\d+)\b")
_CMAKE_NO_EXTENSIONS = re.compile(r"(?<![A-Za-z0-9])(?:CMAKE_)?C_EXTENSIONS\s+\"?(?:OFF|FALSE|NO|0)\b", re.I)
_MESON_STD = re.compile(r"""['"]c_std\s*=\s*([\w:]+)['"]""")
_AC_C99 = re.compile(r"\bAC_PROG_CC_C99\b")
_MAX_BYTES = 512 * 1024

# Build files at the project's root, in the order they are believed: a CMake or Meson project may also ship a
# Makefile for convenience, but its real build is the CMake/Meson one.
CMAKE_FILES = ("CMakeLists.txt",)
MESON_FILES = ("meson.build",)
MAKE_FILES = ("GNUmakefile", "makefile", "Makefile", "Makefile.am", "Makefile.in")
AUTOCONF_FILES = ("configure.ac", "configure.in")


def _read(root: Path, name: str) -> str:
    path = root / name
    try:
        if not path.is_file() or path.stat().st_size > _MAX_BYTES:
            return ""
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    # Comments (`#` in CMake, Meson, Make and m4; `dnl` in autoconf) name flags the build does not use.
    return "\n".join(re.sub(r"#.*|\bdnl\b.*", "", line) for line in text.splitlines())


def _first_std_flag(text: str) -> str | None:
    return next((m.group(1) for m in _STD_FLAG.finditer(text) if C_STANDARD.fullmatch(m.group(1))), None)


def _from_cmake(text: str) -> str | None:
    literal = _first_std_flag(text)
    if literal:
        return literal
    number = _CMAKE_STANDARD.search(text) or _CMAKE_FEATURE.search(text)
    if number is None:
        return None
    # CMake compiles with GNU extensions unless C_EXTENSIONS is off.
    std = ("c" if _CMAKE_NO_EXTENSIONS.search(text) else "gnu") + number.group(1)
    return std if C_STANDARD.fullmatch(std) else None


def _from_meson(text: str) -> str | None:
    found = _MESON_STD.search(text)
    return found.group(1) if found and C_STANDARD.fullmatch(found.group(1)) else _first_std_flag(text)


def _from_autoconf(text: str) -> str | None:
    return _first_std_flag(text) or ("gnu99" if _AC_C99.search(text) else None)


def project_c_standard(root: str | Path) -> str | None:
    """The `-std=` value (e.g. "c89") the project's root build files compile C with; None when they name none."""
    root_p = Path(root)
    readers = ((CMAKE_FILES, _from_cmake), (MESON_FILES, _from_meson), (MAKE_FILES, _first_std_flag),
               (AUTOCONF_FILES, _from_autoconf))
    for names, reader in readers:
        for name in names:
            text = _read(root_p, name)
            found = reader(text) if text else None
            if found:
                return found
    return None


def with_c_standard(flags: Sequence[str], std: str | None) -> list[str]:
    """`flags` compiling C as `std`: a C `-std=` among them is replaced, or one is added first when there is
    none. A C++ `-std=` (a C++ unit's flags) is left alone, as is everything when `std` is None."""
    if std is None:
        return list(flags)
    out: list[str] = []
    placed = False
    for flag in flags:
        if flag.startswith("-std="):
            if not C_STANDARD.fullmatch(flag[5:]):
                return list(flags)
            if not placed:
                out.append(f"-std={std}")
                placed = True
            continue
        out.append(flag)
    return out if placed else [f"-std={std}", *out]


_ISO_C = re.compile(r"-std=c(\d\w*)")


def gnu_dialect(flags: Sequence[str]) -> list[str]:
    """`flags` with an ISO C `-std=cNN` turned into `-std=gnuNN`: what gcc builds with when a project names no
    standard. Strict ISO modes hide POSIX/BSD declarations (DT_DIR, strdup, fileno) that such a project's tests
    use without defining _DEFAULT_SOURCE."""
    return [f"-std=gnu{m.group(1)}" if (m := _ISO_C.fullmatch(flag)) and C_STANDARD.fullmatch(flag[5:]) else flag
            for flag in flags]
