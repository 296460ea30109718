"""A fast start and an instant first code action: the attrs code cache behind the LSP types' import
(`cra.server.startup`), a parse for code actions that needs neither numpy nor the index, and code actions that
answer from a scan of the text (`cra.server.quickscan`) while the C parser is not ready instead of waiting."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsp_support import LINE_IN_ADD, LINE_IN_CLAMP, REPO_ROOT, SERVER_ENV, STUB_SOURCE, install_client_handlers
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from cra.bench.lsp import SOURCE as BENCH_SOURCE
from cra.clients.lsp_types import install_code_action_hook
from cra.server import startup
from cra.server.quickscan import scan_functions
from cra.server.symbols import functions_in

pytestmark = pytest.mark.timeout(120)

# Imports the server's modules as `cra lsp` does, then builds LSP values with the classes attrs made.
IMPORT = """
import json, sys
from cra.server.startup import CodeCache, cached_cattrs_code, fast_imports
cache = CodeCache()
with fast_imports(cache=cache) as counts:
    from cra.server.app import create_server
imported = dict(counts)
from lsprotocol import types
from cra.server.lifecycle import _warm_messages
server = create_server()
with cached_cattrs_code(cache):  # as `serve_process` serves: the converter's functions through the cache
    action = types.CodeAction(title="t", kind="refactor", command=types.Command(title="t", command="cra.implement"))
    back = server.protocol._converter.structure(server.protocol._converter.unstructure(action), types.CodeAction)
    for message in _warm_messages():
        server.protocol.structure_message(message)
cache.save()
messages = {k: cache.counts[k] - imported[k] for k in imported}
print(json.dumps({**imported, "messages": messages, "equal": back == action, "repr": repr(action),
                  "numpy": "numpy" in sys.modules, "plain": "__slots__" not in vars(types.CodeAction),
                  "module": sys.modules["lsprotocol.types"] is types
                            and types.CodeAction.__init__.__module__ == "lsprotocol.types"}))
"""


def import_server(cache_home: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
                          env={**SERVER_ENV, "XDG_CACHE_HOME": str(cache_home)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_attrs_internal_the_cache_replaces_is_there() -> None:
    # When attrs changes it, the server still starts, only slower: this says so instead of hiding it.
    assert startup._attrs_make() is not None


def test_the_second_start_takes_the_lsp_types_methods_from_the_cache(tmp_path: Path) -> None:
    first = import_server(tmp_path)
    assert first["hits"] == 0 and first["compiled"] > 500  # every LSP type
    cache = tmp_path / "cra" / "lsp-startup"
    [path] = cache.iterdir()
    assert path.name.startswith(f"attrs-code-{sys.implementation.cache_tag}")
    second = import_server(tmp_path)
    assert second["hits"] >= first["compiled"] - startup.SAVE_THRESHOLD
    assert second["compiled"] < startup.SAVE_THRESHOLD  # nothing new: the file is not rewritten
    # the converter's generated functions too
    assert first["messages"]["compiled"] > 10
    assert second["messages"]["hits"] >= first["messages"]["compiled"] and second["messages"]["compiled"] == 0
    for run in (first, second):  # the classes behave the same either way
        assert run["equal"] is True and run["numpy"] is False
        assert run["plain"] is True  # built once, not rebuilt with __slots__
        assert run["module"] is True  # their module back in place, their methods its own
    assert second["repr"] == first["repr"]


def test_a_corrupt_cache_is_ignored_and_replaced(tmp_path: Path) -> None:
    path = startup.cache_path().name
    folder = tmp_path / "cra" / "lsp-startup"
    folder.mkdir(parents=True)
    (folder / path).write_bytes(b"\x00not marshal data")
    run = import_server(tmp_path)
    assert run["hits"] == 0 and run["compiled"] > 500 and run["equal"] is True
    assert import_server(tmp_path)["compiled"] < startup.SAVE_THRESHOLD
    # One flipped byte in a code object: the digest no longer matches, nothing of the file is run.
    data = bytearray((folder / path).read_bytes())
    data[len(data) // 2] ^= 0x40
    (folder / path).write_bytes(bytes(data))
    again = import_server(tmp_path)
    assert again["hits"] == 0 and again["equal"] is True


def test_the_cache_leaves_attrs_as_it_was(tmp_path: Path) -> None:
    import attr._make

    original = attr._make._compile_and_eval
    with startup.cached_attrs_code(tmp_path / "codes.marshal") as counts:
        assert attr._make._compile_and_eval is not original
    assert attr._make._compile_and_eval is original
    assert counts == {"hits": 0, "compiled": 0}
    assert not (tmp_path / "codes.marshal").exists()  # nothing compiled, nothing written


def test_the_cattrs_cache_shadows_compile_only_inside(tmp_path: Path) -> None:
    import cattrs.gen

    cache = startup.CodeCache(tmp_path / "codes.marshal")
    with startup.cached_cattrs_code(cache):
        assert "compile" in vars(cattrs.gen)
        code = cattrs.gen.compile("x = 1", "<t>", "exec")  # type: ignore[attr-defined]
        assert cattrs.gen.compile("x = 1", "<t>", "exec") is code  # type: ignore[attr-defined]
        assert cattrs.gen.compile("1", "<t>", "eval") is not None  # another shape: the builtin
    assert "compile" not in vars(cattrs.gen)
    assert cache.counts == {"hits": 1, "compiled": 1}


def test_plain_classes_only_inside_and_only_where_no_class_asks_for_slots() -> None:
    import attrs

    original = attrs.define
    with startup.plain_attrs_classes():
        @attrs.define
        class Plain:
            x: int = 0

        @attrs.define(slots=True)
        class Slotted:
            x: int = 0
    assert attrs.define is original
    assert "__slots__" not in vars(Plain) and "__slots__" in vars(Slotted)
    assert Plain(1) == Plain(1) and attrs.evolve(Plain(1), x=2) == Plain(2) and repr(Plain(3)) == "Plain(x=3)"


def test_finding_the_functions_of_a_document_needs_no_numpy_and_no_index() -> None:
    code = ("import sys; from cra.server.symbols import functions_in; "
            "sites = functions_in(open('examples/ringbuf/ringbuf.c', 'rb').read()); "
            "print(len(sites), [m for m in ('numpy', 'cra.pipeline.context.index', 'cra.pipeline.context.assemble') "
            "if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=SERVER_ENV,
                          cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    count, loaded = done.stdout.split(" ", 1)
    assert int(count) > 3 and loaded.strip() == "[]"


@pytest.mark.parametrize("name", ["ringbuf.c", "ringbuf.h", "test_ringbuf.c"])
def test_the_parse_without_references_finds_the_same_symbols(name: str) -> None:
    from cra.pipeline.context.cparse import parse_definitions, parse_source

    data = (REPO_ROOT / "examples" / "ringbuf" / name).read_bytes()
    full, definitions = parse_source(name, data), parse_definitions(name, data)
    assert definitions.symbols == full.symbols and definitions.includes == full.includes
    assert len(full.references) > 0 and len(definitions.references) == 0


def _shape(sites: list) -> list[tuple]:
    return [(s.name, s.kind, s.start_line, s.end_line, s.is_stub, s.is_static) for s in sites]


@pytest.mark.parametrize("name", ["stub", "bench", "ringbuf.c", "ringbuf.h", "test_ringbuf.c", "tricky"])
def test_the_scan_finds_what_the_parser_finds(name: str) -> None:
    tricky = """#ifdef __cplusplus
extern "C" {
#endif
/* int commented(void) { return 1; } */
static const char *greeting(void) { return "}{;"; }
#define MAX(a, b) ((a) > (b) ? (a) : (b))
struct pair { int a; int b; };
typedef int (*callback)(int);
int apply(callback f,
          int x)
{
    if (x) { return f(x); }
    return 0;
}
void todo(int x) { (void)x; /* TODO */ }
int later(int);
long kr_add(a, b)
    long a;
    long b;
{
    return a + b;
}
int kr_stub(n)
    unsigned n;
{
    return 0;
}
#ifdef __cplusplus
}
#endif
"""
    sources = {"stub": STUB_SOURCE, "bench": BENCH_SOURCE, "tricky": tricky}
    text = sources.get(name) or (REPO_ROOT / "examples" / "ringbuf" / name).read_text()
    expected = _shape(functions_in(text.encode()))
    assert expected, "the source has functions"
    assert _shape(scan_functions(text)) == expected


# A server whose document parses wait for `test/release` (as if the C parser took very long to load).
BLOCKED_PARSE = """
import threading
from cra.server import documents
from cra.server.app import create_server, start_stdio

release = threading.Event()
parse = documents.functions_in

def slow_functions_in(data, path="document.c"):
    release.wait(30)
    return parse(data, path)

documents.functions_in = slow_functions_in
server = create_server()

@server.feature("test/release")
def release_it(ls, params):
    release.set()
    return True

start_stdio(server)
"""


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-c", BLOCKED_PARSE],
                                              server_env=SERVER_ENV))
async def client(lsp_client: LanguageClient, c_workspace: Path):
    install_code_action_hook(lsp_client.protocol._converter)
    install_client_handlers(lsp_client)
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=c_workspace.as_uri()))
    yield
    await lsp_client.protocol.send_request_async("test/release", {})
    await lsp_client.shutdown_session()


async def titles(client: LanguageClient, uri: str, line: int) -> list[str]:
    position = types.Position(line=line, character=0)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=position, end=position),
        context=types.CodeActionContext(diagnostics=[])))
    return [action.title for action in actions or []]


async def test_code_actions_answer_from_the_scan_while_the_parser_is_not_ready(client: LanguageClient,
                                                                              c_workspace: Path) -> None:
    uri = (c_workspace / "math.c").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="c", version=1, text=STUB_SOURCE)))
    # The parse is blocked: the answers come from the scan, with the function under the cursor and its stub-ness.
    started = time.monotonic()
    scanned = await titles(client, uri, LINE_IN_CLAMP)
    assert time.monotonic() - started < 10  # the blocked parse would hold it 30 s
    assert scanned[:2] == ["cra: Implement function `clamp`", "cra: Document function `clamp`"]
    assert (await titles(client, uri, LINE_IN_ADD))[0] == "cra: Generate tests for function `add`"
    await client.protocol.send_request_async("test/release", {})
    # Once the parser has answered, the same questions get the same answers from it.
    assert await titles(client, uri, LINE_IN_CLAMP) == scanned


async def test_a_document_too_long_to_scan_on_the_event_loop_waits_for_its_parse(client: LanguageClient,
                                                                                  c_workspace: Path) -> None:
    from cra.server.quickscan import SCAN_LIMIT_CHARS

    filler = "".join(f"int filler_{i}(int x) {{\n    return x + {i};\n}}\n" for i in range(SCAN_LIMIT_CHARS // 30))
    text = STUB_SOURCE + filler
    assert SCAN_LIMIT_CHARS < len(text) < 1_000_000
    uri = (c_workspace / "long.c").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="c", version=1, text=text)))
    answer = asyncio.ensure_future(titles(client, uri, LINE_IN_CLAMP))
    await asyncio.sleep(1.0)
    assert not answer.done()  # no scan: it waits for the (blocked) parse
    await client.protocol.send_request_async("test/release", {})
    assert (await asyncio.wait_for(answer, 30))[0] == "cra: Implement function `clamp`"


def test_the_answer_to_initialize_is_the_json_lsprotocols_own_functions_give() -> None:
    from lsprotocol.converters import get_converter

    from cra.server import pygls_compat
    from cra.server.app import create_server

    server = create_server()
    ours, theirs = server.protocol._converter, get_converter()
    capabilities = types.ServerCapabilities(
        position_encoding=types.PositionEncodingKind.Utf16,
        text_document_sync=types.TextDocumentSyncOptions(open_close=True, change=types.TextDocumentSyncKind.Incremental,
                                                         save=types.SaveOptions(include_text=False)),
        code_action_provider=types.CodeActionOptions(code_action_kinds=["refactor.rewrite.cra.implement"],
                                                     resolve_provider=False),
        hover_provider=True, execute_command_provider=types.ExecuteCommandOptions(commands=["cra.implement"]),
        workspace=types.WorkspaceOptions(workspace_folders=types.WorkspaceFoldersServerCapabilities(
            supported=True, change_notifications=True)),
        experimental={"cra": [1, None]})
    results = [types.InitializeResult(capabilities=capabilities,
                                      server_info=types.ServerInfo(name="cra", version="0.1.0")),
               types.InitializeResult(capabilities=types.ServerCapabilities())]
    for result in results:
        assert ours.unstructure(result) == theirs.unstructure(result)
    assert ours.unstructure(results[1]) == {"capabilities": {}}
    # the converter built no functions for them: their hooks are the field-by-field ones
    assert all(ours.get_unstructure_hook(cls).__qualname__.startswith("_unstructure_fields")
               for cls in pygls_compat.ONCE_TYPES)
