"""The `repos` suite: real C libraries as found in a package registry (Debian source packages), each with the
test command a developer of that library would type in a fresh tree.

A task names one function of one unit: blanking it (body replaced by a zero-value stub, the convention of
`cra.bench.quality_tasks.blank_function`) makes the library's own test command fail. Every task here was checked
so by `python -m cra.bench.repos.verify`, which also measured `baseline_seconds` (a fresh copy of the tree,
the whole test command, 2 parallel jobs, on a 2-core machine). Nothing of the libraries is kept in the
repository beyond this manifest; trees are fetched into the cache by `cra.bench.repos.fetch`.

The test commands need, besides gcc and make: g++, cmake >= 3.20 (`ctest --test-dir`), meson and ninja, and for
msgpack-c's tests GoogleTest and zlib headers (Debian: libgtest-dev, zlib1g-dev). Versions are pinned to what the
archive served when the tasks were verified; a later point release can replace one (`fetch` then says which
versions the archive has).
"""

from __future__ import annotations

import msgspec

# How the library builds (and runs) its tests.
BUILD_KINDS = ("cmake", "make", "autotools", "meson", "plain")
# Shapes the tests take, which a pipeline has to cope with when it looks for "the tests of this function".
INCLUDES_UNIT = "test-includes-unit"  # a test program #includes the .c (or implementation header) it tests
SEVERAL_MAINS = "several-mains"  # many test programs, each with its own main()
SELF_TEST_DEFINE = "self-test-define"  # the unit carries its own test main() behind a -D..._TEST define
CXX_DRIVER = "cxx-test-driver"  # the C library's tests are driven by a C++ program
SHAPES = (INCLUDES_UNIT, SEVERAL_MAINS, SELF_TEST_DEFINE, CXX_DRIVER)


class RepoTask(msgspec.Struct, frozen=True):
    unit: str  # path of the source file inside the tree (as extracted)
    function: str  # defined once in that file


class RepoLibrary(msgspec.Struct, frozen=True):
    name: str
    package: str  # Debian source package
    version: str  # exact Debian version (what `apt-get source` fetched)
    build: str  # one of BUILD_KINDS
    test_command: str  # what a developer types in a fresh tree; exit status 0 = tests pass
    shapes: list[str]
    baseline_seconds: float  # measured: the test command on a fresh copy of the tree
    tasks: list[RepoTask]
    # For the verifier only: the cheaper command to re-run the tests in a tree where `test_command` already ran
    # (keeps the build dir). Empty: run `test_command` again.
    retest_command: str = ""
    timeout_seconds: float = 300.0  # per run of the test command
    # The stub a task's function gets: "plain" (`{ return 0; }`) or "quiet" (parameters also cast to void, where
    # the library builds with -Werror and a plain stub would break the build rather than fail the tests).
    stub: str = "plain"
    notes: str = ""

    def task_id(self, task: RepoTask) -> str:
        return f"repos:{self.name}:{task.unit}:{task.function}"


def T(unit: str, *functions: str) -> list[RepoTask]:
    return [RepoTask(unit, f) for f in functions]


LIBRARIES: list[RepoLibrary] = [
    RepoLibrary(
        name="cjson", package="cjson", version="1.7.15-1+deb12u4", build="cmake",
        test_command="cmake -B build && cmake --build build && ctest --test-dir build",
        retest_command="cmake --build build && ctest --test-dir build",
        shapes=[INCLUDES_UNIT, SEVERAL_MAINS], baseline_seconds=6.0, stub="quiet",
        notes="tests/common.h #includes ../cJSON.c, so static helpers are reachable; builds with -Werror",
        tasks=T("cJSON.c", "parse_hex4", "parse_number", "print_string_ptr", "case_insensitive_strcmp",
                "cJSON_Compare", "cJSON_SetValuestring"),
    ),
    RepoLibrary(
        name="json-c", package="json-c", version="0.16-2", build="cmake",
        test_command="cmake -B build && cmake --build build && ctest --test-dir build",
        retest_command="cmake --build build && ctest --test-dir build",
        shapes=[SEVERAL_MAINS], baseline_seconds=18.5,
        notes="each test program's output is compared with tests/*.expected by a shell script",
        tasks=[*T("json_object.c", "json_object_int_inc", "json_object_get_int64"),
               *T("json_pointer.c", "json_pointer_get"), *T("printbuf.c", "sprintbuf"),
               *T("arraylist.c", "array_list_del_idx"), *T("linkhash.c", "lh_table_delete_entry"),
               *T("json_util.c", "json_parse_uint64")],
    ),
    RepoLibrary(
        name="jansson", package="jansson", version="2.14-2", build="cmake",
        test_command="cmake -B build && cmake --build build && ctest --test-dir build",
        retest_command="cmake --build build && ctest --test-dir build",
        shapes=[SEVERAL_MAINS], baseline_seconds=10.9, timeout_seconds=180.0,
        notes="test/suites/api: one program per API area; the other suites feed JSON files to json_process",
        tasks=[*T("src/load.c", "decode_unicode_escape", "lex_scan_number"), *T("src/dump.c", "dump_string"),
               *T("src/value.c", "json_array_insert_new", "json_equal", "json_vsprintf"),
               *T("src/pack_unpack.c", "pack_string"), *T("src/strbuffer.c", "strbuffer_append_bytes")],
    ),
    RepoLibrary(
        name="msgpack-c", package="msgpack-c", version="4.0.0-3", build="cmake",
        test_command="cmake -B build && cmake --build build && ctest --test-dir build",
        retest_command="cmake --build build && ctest --test-dir build",
        shapes=[CXX_DRIVER, SEVERAL_MAINS], baseline_seconds=12.1, timeout_seconds=240.0,
        notes="the C library's tests are GoogleTest programs in test/*.cpp (needs libgtest-dev and zlib)",
        tasks=[*T("src/objectc.c", "msgpack_object_print_buffer"),
               *T("src/unpack.c", "msgpack_unpack_next", "template_callback_map", "msgpack_unpacker_next"),
               *T("src/vrefbuffer.c", "msgpack_vrefbuffer_append_copy", "msgpack_vrefbuffer_migrate")],
    ),
    RepoLibrary(
        name="stb", package="libstb", version="0.0~git20220908.8b5f1f3+ds-1", build="make",
        test_command="make && make -C tests && make -C tests do_tests",
        shapes=[SELF_TEST_DEFINE, INCLUDES_UNIT, SEVERAL_MAINS], baseline_seconds=7.5, timeout_seconds=120.0,
        notes="single-header libraries; tests/Makefile (Debian's) builds stb_divide.h with -DSTB_DIVIDE_TEST and "
              "stb_c_lexer.h with -DSTB_C_LEXER_SELF_TEST, each header's own main()",
        tasks=[*T("stb_divide.h", "stb_div_trunc", "stb_div_floor", "stb_div_eucl", "stb_mod_trunc",
                  "stb_mod_floor"),
               *T("stb_c_lexer.h", "stb__clex_parse_char")],
    ),
    RepoLibrary(
        name="dsfmt", package="dsfmt", version="2.2.3+dfsg-5", build="plain",
        test_command="for m in 521 1279 2203 4253 11213 19937 44497 86243 132049 216091; do "
                     "cc -O2 -DDSFMT_MEXP=$m -o test-std-M$m test.c dSFMT.c -lm || exit 1; done "
                     "&& sh check.sh test-std",
        shapes=[], baseline_seconds=5.3, timeout_seconds=120.0,
        notes="flat tree, no usable build system (Debian's Makefile.am has no configure): test.c is built once "
              "per Mersenne exponent and check.sh diffs each program's output with dSFMT.<mexp>.out.txt",
        tasks=T("dSFMT.c", "dsfmt_chk_init_gen_rand", "dsfmt_chk_init_by_array", "period_certification",
                "gen_rand_array_c1o2", "dsfmt_gen_rand_all") + T("dSFMT.h", "dsfmt_genrand_open_open"),
    ),
    RepoLibrary(
        name="fribidi", package="fribidi", version="1.0.8-2.1", build="meson",
        test_command="meson setup build && meson test -C build",
        retest_command="meson test -C build",
        shapes=[SEVERAL_MAINS], baseline_seconds=7.3, timeout_seconds=240.0,
        notes="also ships autotools files; test/ runs the fribidi tool on inputs, unicode-conformance/ has its own "
              "programs over the Unicode BidiTest files",
        tasks=[*T("lib/fribidi-bidi.c", "compact_neutrals", "pairing_nodes_sorted_merge", "fribidi_reorder_line"),
               *T("lib/fribidi-joining.c", "fribidi_join_arabic"),
               *T("lib/fribidi-brackets.c", "fribidi_get_bracket"),
               *T("lib/fribidi-run.c", "shadow_run_list"), *T("lib/fribidi.c", "fribidi_remove_bidi_marks"),
               *T("lib/fribidi-char-sets-utf8.c", "fribidi_utf8_to_unicode")],
    ),
    RepoLibrary(
        name="libmd", package="libmd", version="1.0.4-2", build="autotools",
        test_command="./configure && make check",
        retest_command="make check",
        shapes=[SEVERAL_MAINS], baseline_seconds=7.2, timeout_seconds=120.0,
        notes="one test program per digest in test/, all sharing test/test.h",
        tasks=[*T("src/md5.c", "MD5Update", "MD5Transform"), *T("src/sha1.c", "SHA1Transform"),
               *T("src/sha2.c", "SHA256Update", "SHA512Pad"), *T("src/rmd160.c", "RMD160Transform"),
               *T("src/md2.c", "MD2Final")],
    ),
    RepoLibrary(
        name="zlib", package="zlib", version="1:1.2.13.dfsg-1", build="make",
        test_command="./configure && make test",
        retest_command="make test",
        shapes=[SEVERAL_MAINS], baseline_seconds=7.8, timeout_seconds=180.0,
        notes="hand-written configure script + Makefile; test/example.c exercises most of the API, minigzip "
              "round-trips; functions are K&R-style definitions",
        tasks=[*T("compress.c", "compress2"), *T("uncompr.c", "uncompress2"),
               *T("gzwrite.c", "gzputs", "gzvprintf"), *T("gzread.c", "gzungetc"), *T("inflate.c", "updatewindow")],
    ),
    RepoLibrary(
        name="http-parser", package="http-parser", version="2.9.4-5", build="make",
        test_command="make test",
        shapes=[], baseline_seconds=12.5, timeout_seconds=120.0, stub="quiet",
        notes="flat tree: http_parser.c, test.c and a Makefile that builds the test twice (-O0 and -O3); "
              "-Wall -Wextra -Werror",
        tasks=T("http_parser.c", "http_message_needs_eof", "http_should_keep_alive", "http_parse_host_char",
                "http_parser_pause", "http_status_str"),
    ),
    RepoLibrary(
        name="lzlib", package="lzlib", version="1.13-5", build="make",
        test_command="./configure && make check",
        retest_command="make check",
        shapes=[SEVERAL_MAINS], baseline_seconds=4.5, timeout_seconds=60.0,
        notes="hand-written configure; lzlib.c #includes cbuffer.c, decoder.c, encoder*.c; testsuite/check.sh "
              "drives minilzip, bbexample, ffexample and lzcheck",
        tasks=[*T("encoder_base.c", "Mb_normalize_pos", "Mb_init", "Mb_reset", "LZeb_try_sync_flush"),
               *T("lzlib.c", "LZ_Decoder_init", "LZ_compress_open")],
    ),
]


def library(name: str) -> RepoLibrary:
    for lib in LIBRARIES:
        if lib.name == name:
            return lib
    have = ", ".join(lib.name for lib in LIBRARIES)
    raise KeyError(f"no library {name!r} in the repos manifest (have: {have})")


def all_tasks() -> list[tuple[RepoLibrary, RepoTask]]:
    return [(lib, task) for lib in LIBRARIES for task in lib.tasks]

