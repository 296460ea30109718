"""What makes the language server's start fast: `fast_imports()` wraps the imports it needs before it can answer.

Four things, each measured on a 2-core machine (CPU time of `import cra.server.app`, ~700 ms without them):

* The garbage collector is paused during the imports and what they created is then frozen (`gc.freeze`): the
  imports allocate hundreds of thousands of objects and trigger full collections that find nothing to free.
* The compiled methods attrs generates for the LSP types are kept on disk (`cached_attrs_code`).
* The LSP types are built as ordinary classes, not slotted ones, which attrs builds twice, and without copying
  their module's namespace into each class's `__init__` globals (`plain_attrs_classes`).
* The functions cattrs generates to read and write each message type (~100 for `initialize` alone) are compiled
  through the same cache (`cached_cattrs_code`), for the life of the server (`serve_process`).

Why the second: pygls cannot answer `initialize` before `lsprotocol.types` is imported, and that import builds
~550 classes with attrs, which writes each class's `__init__`, `__repr__`, `__eq__`, ... as Python source and
compiles it. The compile step is about half of that import (~170 of ~360 ms), and its input is the same on every
start. So, inside `cached_attrs_code`, attrs' compile step looks the code object up in a file first (by the exact
source text and file name) and compiles only what is missing; the new ones are saved for the next start.

Only the compile step is replaced (`attr._make._compile_and_eval`, an attrs internal): attrs evaluates the code,
registers its linecache entry and builds the classes as always, and a code object from the cache is what compiling
the same source under the same name gives (marshal is the format of .pyc files). The cache file is per interpreter
(`sys.implementation.cache_tag`) and private to the user (mode 0600, in their cache folder), like the .pyc files of
their own installs; it carries a digest of its content, and an unreadable, foreign or damaged file is ignored and
replaced. When attrs no longer has the expected internal nothing is patched (the server only starts slower).
Guarded by tests/server/test_startup_latency.py.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import importlib
import inspect
import logging
import marshal
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import CodeType
from typing import Any

logger = logging.getLogger(__name__)

# Bumped when the file's layout changes.
FORMAT = 2
# Fewer new ones than this are not saved: a class hashing a string (its hash seed differs per process) compiles anew
# on every start, and rewriting the whole file for it each time is wasted work.
SAVE_THRESHOLD = 8
_EXPECTED_PARAMETERS = ["script", "globs", "locs", "filename"]
_DIGEST_BYTES = 32  # the file: sha256 of the payload, then the payload (a marshalled dict: key -> code object)


def cache_path() -> Path:
    """`$XDG_CACHE_HOME/cra/lsp-startup/attrs-code-<interpreter>.marshal` (default ~/.cache). Code objects depend on
    the interpreter only: a new attrs or lsprotocol writes other source, which gets other keys."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cra" / "lsp-startup"
    return base / f"attrs-code-{sys.implementation.cache_tag}-v{FORMAT}.marshal"


def _key(script: str, filename: str) -> str:
    return hashlib.sha1(f"{filename}\0{script}".encode(errors="surrogatepass")).hexdigest()


def _load(path: Path) -> dict[str, CodeType]:
    """The cached code objects; {} when the file is missing, foreign or damaged. Its payload is checked against
    the digest written before it: the code objects are run, so a damaged one must never reach `eval`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        logger.info("ignoring the attrs code cache %s: %s", path, exc)
        return {}
    digest, payload = data[:_DIGEST_BYTES], data[_DIGEST_BYTES:]
    if len(digest) < _DIGEST_BYTES or hashlib.sha256(payload).digest() != digest:
        logger.info("ignoring the attrs code cache %s: not a cra cache file or damaged", path)
        return {}
    try:
        loaded = marshal.loads(payload)
    except (EOFError, ValueError, TypeError) as exc:
        logger.info("ignoring the attrs code cache %s: %s", path, exc)
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, CodeType)}


def _save(path: Path, codes: dict[str, CodeType]) -> None:
    """Write atomically: servers starting at the same time each write a whole file, the last one wins."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            payload = marshal.dumps(codes)
            with os.fdopen(fd, "wb") as handle:
                handle.write(hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:  # a read-only home: the next start compiles again
        logger.info("cannot save the attrs code cache %s: %s", path, exc)


def _attrs_make() -> Any | None:
    """attrs' `_make` module when it has the compile step this cache replaces, else None."""
    try:
        import attr._make as make
    except ImportError:
        return None
    original = getattr(make, "_compile_and_eval", None)
    if original is None or list(inspect.signature(original).parameters) != _EXPECTED_PARAMETERS:
        return None
    return make


class CodeCache:
    """Code objects by (source text, file name), loaded from `path` once; what this process used is saved back
    (entries of old versions drop out). Counts: {"hits": n, "compiled": n}."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        self._codes = _load(self.path)
        self._used: dict[str, CodeType] = {}
        self.counts = {"hits": 0, "compiled": 0}
        self._compiled_at_save = 0

    def compile(self, script: str, filename: str) -> CodeType:
        key = _key(script, filename)
        code = self._codes.get(key)
        if code is None:
            code = compile(script, filename, "exec")
            self._codes[key] = code
            self.counts["compiled"] += 1
        else:
            self.counts["hits"] += 1
        self._used[key] = code
        return code

    def save(self) -> None:
        """Write what was used when enough was compiled since the last save (see SAVE_THRESHOLD)."""
        if self.counts["compiled"] - self._compiled_at_save >= SAVE_THRESHOLD:
            self._compiled_at_save = self.counts["compiled"]
            _save(self.path, dict(self._used))


@contextlib.contextmanager
def cached_attrs_code(path: Path | None = None, cache: CodeCache | None = None) -> Iterator[dict[str, int]]:
    """While inside, attrs classes get their generated methods from the cache at `path` (default `cache_path()`);
    on leaving, newly compiled ones are added to it. With `cache`, that one is used and its owner saves it.
    Yields counters: {"hits": n, "compiled": n}."""
    own = cache is None
    cache = cache or CodeCache(path)
    make = _attrs_make()
    if make is None:
        yield cache.counts
        return
    original = make._compile_and_eval

    def compile_and_eval(script: str, globs: dict[str, Any] | None, locs: Any = None, filename: str = "") -> None:
        eval(cache.compile(script, filename), globs, locs)

    make._compile_and_eval = compile_and_eval
    try:
        yield cache.counts
    finally:
        make._compile_and_eval = original
        if own:
            cache.save()


def _cattrs_generators() -> list[Any]:
    """cattrs' modules that compile the (un)structuring functions they generate."""
    modules = []
    for name in ("cattrs.gen", "cattrs.gen.typeddicts"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return modules


@contextlib.contextmanager
def cached_cattrs_code(cache: CodeCache) -> Iterator[dict[str, int]]:
    """While inside, the functions cattrs generates to read and write each LSP message type are compiled through
    `cache`: the first `initialize` alone needs ~100 of them (its params and result), ~30 ms of compiling.

    cattrs calls the builtin `compile(script, name, "exec")`; a module-level `compile` in its generator modules
    shadows the builtin there (no cattrs function is replaced). A call of another shape goes to the builtin."""
    modules = [m for m in _cattrs_generators() if "compile" not in vars(m)]

    def cached_compile(source: Any, filename: Any, mode: str, *args: Any, **kwargs: Any) -> Any:
        if mode == "exec" and not args and not kwargs and isinstance(source, str) and isinstance(filename, str):
            return cache.compile(source, filename)
        return compile(source, filename, mode, *args, **kwargs)

    for module in modules:
        module.compile = cached_compile
    try:
        yield cache.counts
    finally:
        for module in modules:
            with contextlib.suppress(AttributeError):
                del module.compile


@contextlib.contextmanager
def plain_attrs_classes() -> Iterator[None]:
    """While inside, `attrs.define` makes ordinary classes instead of slotted ones (unless a class asks for slots).

    A slotted attrs class is built twice: the class statement makes one, then attrs makes a second with
    `__slots__` and copies everything over. For lsprotocol's ~550 types that second build is about a quarter of
    the import (~40 ms here). What slots buy, smaller instances and no stray attributes, does not matter for LSP
    messages that live for one request; equality, hashing, repr, (un)structuring and `attrs.evolve` are the same."""
    try:
        import attrs
    except ImportError:
        yield
        return
    original = attrs.define

    def define(maybe_cls: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("slots", False)
        if maybe_cls is None:
            return lambda cls: define(cls, **kwargs)
        # attrs copies the class's whole module namespace into each generated __init__'s globals (so that
        # `typing.get_type_hints(C.__init__)` resolves string annotations): for a module of ~1,000 names defining
        # ~550 classes, ~30 % of what attrs does per class. While the class is built its module is out of
        # sys.modules, so attrs skips the copy; the methods' names, `__module__` and code are the same.
        module = sys.modules.pop(maybe_cls.__module__, None)
        try:
            return original(maybe_cls, **kwargs)
        finally:
            if module is not None:
                sys.modules[maybe_cls.__module__] = module

    attrs.define = define  # type: ignore[assignment]
    try:
        yield
    finally:
        attrs.define = original  # type: ignore[assignment]


@contextlib.contextmanager
def fast_imports(path: Path | None = None, cache: CodeCache | None = None) -> Iterator[dict[str, int]]:
    """Import the server's modules inside this: no garbage collection meanwhile, attrs' methods from the cache.
    Whatever was allocated is frozen afterwards, so later collections do not walk the imported modules again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with cached_attrs_code(path, cache) as counts, plain_attrs_classes():
            yield counts
    finally:
        if was_enabled:
            gc.freeze()
            gc.enable()


def serve_process(args: argparse.Namespace, path: Path | None = None) -> int:
    """What `cra lsp` and `python -m cra.server` run: import and build the server inside `fast_imports`, then serve
    with cattrs' generated functions compiled through the same cache, saved after the imports (a server killed
    later keeps that part) and again when it exits."""
    cache = CodeCache(path)
    try:
        with fast_imports(cache=cache):
            from cra.server.app import create_server

            server = create_server()  # its converter's hooks allocate much like the imports: also no collection
        cache.save()
        logging.basicConfig(level=logging.WARNING)
        from cra.server import transport

        with cached_cattrs_code(cache):
            return transport.serve(server, args)
    finally:
        cache.save()
