"""`WorkspaceIndex`: every C/H file of a workspace, with lookups by name, position and reference."""

from __future__ import annotations

import json
import os
import shlex
import time
from collections import OrderedDict, defaultdict

import msgspec
import tree_sitter

from cra.pipeline.context import cparse, discover, incremental, parallel
from cra.pipeline.context import symbols as k
from cra.pipeline.context.cache import IndexCache
from cra.pipeline.context.symbols import ContextError, FileIndex, Include, IndexStats, Reference, Symbol

# Trees kept for incremental re-parsing: the documents being edited, not the whole workspace.
_KEPT_TREES = 32
_DEFINITION_PREFERENCE = {k.FUNCTION: 0, k.STRUCT: 0, k.UNION: 0, k.ENUM: 0, k.TYPEDEF: 0, k.MACRO: 0,
                          k.MACRO_FUNCTION: 0, k.ENUMERATOR: 0, k.VARIABLE: 1, k.PROTOTYPE: 2}


def _include_dirs(root: str) -> list[str]:
    """Workspace-relative -I/-iquote/-isystem directories from compile_commands.json (root or build/)."""
    for candidate in ("compile_commands.json", os.path.join("build", "compile_commands.json")):
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            break
    else:
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, ValueError):
        return []
    dirs: list[str] = []
    real_root = os.path.realpath(root)
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        args = entry.get("arguments")
        if not isinstance(args, list):
            try:
                args = shlex.split(str(entry.get("command", "")))
            except ValueError:
                continue
        base = str(entry.get("directory", root))
        i = 0
        while i < len(args):
            arg = str(args[i])
            value = None
            for flag in ("-I", "-iquote", "-isystem"):
                if arg == flag and i + 1 < len(args):
                    value = str(args[i + 1])
                    i += 1
                elif arg.startswith(flag) and len(arg) > len(flag):
                    value = arg[len(flag) :]
            if value is not None:
                absolute = os.path.realpath(os.path.join(base, value))
                if absolute == real_root or absolute.startswith(real_root + os.sep):
                    rel = os.path.relpath(absolute, real_root).replace(os.sep, "/")
                    rel = "" if rel == "." else rel
                    if rel not in dirs:
                        dirs.append(rel)
            i += 1
    return dirs


def _join(directory: str, target: str) -> str:
    return os.path.normpath(os.path.join(directory, target)).replace(os.sep, "/") if directory else os.path.normpath(
        target
    ).replace(os.sep, "/")


_CALL_TARGETS = frozenset({k.FUNCTION, k.PROTOTYPE, k.MACRO_FUNCTION, k.VARIABLE})  # variables: function pointers
_IDENT_TARGETS = frozenset({k.MACRO, k.MACRO_FUNCTION, k.ENUMERATOR, k.VARIABLE, k.FUNCTION, k.PROTOTYPE})


class WorkspaceIndex:
    def __init__(self, root: str, max_file_bytes: int = discover.DEFAULT_MAX_FILE_BYTES) -> None:
        self.root = os.path.abspath(root)
        self.max_file_bytes = max_file_bytes
        self.files: dict[str, FileIndex] = {}
        self.stats = IndexStats()
        self.include_dirs: list[str] = []
        self.cache: IndexCache | None = None
        self.version = 0  # bumped on every change: exact derived data (include closures) keys on it
        # Bumped by full builds only: workspace-wide statistics (PageRank, word frequencies) stay valid across
        # single-file edits, which barely move them, so an edit does not pay for recomputing them.
        self.generation = 0
        # path -> (sha256 of the indexed text, text, masked text, tree): what an incremental parse starts from.
        self._trees: OrderedDict[str, tuple[str, bytes, bytes, tree_sitter.Tree]] = OrderedDict()
        self._defs: dict[str, list[Symbol]] = defaultdict(list)
        self._by_suffix: dict[str, list[str]] = defaultdict(list)
        self._refs_by_name: dict[str, list[tuple[str, Reference]]] | None = None
        self._closures: dict[str, tuple[int, dict[str, int]]] = {}

    # -- building ----------------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        root: str,
        *,
        use_cache: bool = True,
        max_file_bytes: int = discover.DEFAULT_MAX_FILE_BYTES,
        workers: int | None = None,
    ) -> WorkspaceIndex:
        """Index every C/H file under `root`. `workers`: processes parsing a large cold build, this one included
        (default: one per CPU, at most 4; 1 parses in this process only)."""
        if not os.path.isdir(root):
            raise ContextError(f"cannot index {root!r}: not a directory")
        started = time.perf_counter()
        index = cls(root, max_file_bytes)
        index.include_dirs = _include_dirs(index.root)
        index.cache = IndexCache(index.root) if use_cache else None
        stats = index.stats
        skipped = []
        pending: list[tuple[str, bytes]] = []
        for rel in discover.candidate_paths(index.root):
            data, skip = discover.read_source(index.root, rel, max_file_bytes)
            if data is None:
                if skip is not None:
                    skipped.append(skip)
                continue
            stats.bytes += len(data)
            entry = index.cache.get(cparse.sha256(data), rel) if index.cache is not None else None
            if entry is None:
                pending.append((rel, data))
                index.files[rel] = None  # type: ignore[assignment]  # keeps discovery order; filled below
            else:
                stats.cached += 1
                index.files[rel] = entry
        with parallel.no_gc():
            stats.processes = parallel.process_count(pending, workers)
            for entry in parallel.parse_all(pending, stats.processes):
                stats.parsed += 1
                index.files[entry.path] = entry
                if index.cache is not None:
                    index.cache.put(entry)
            stats.skipped = skipped
            index._reindex_all()
        index.generation += 1
        stats.seconds = time.perf_counter() - started
        return index

    def _reindex_all(self) -> None:
        self._defs = defaultdict(list)
        self._by_suffix = defaultdict(list)
        for rel in self.files:
            self._by_suffix[rel.rsplit("/", 1)[-1]].append(rel)
        for rel in list(self.files):
            self._resolve_includes(rel)
            for symbol in self.files[rel].symbols:
                self._defs[symbol.name].append(symbol)
        self._refs_by_name = None
        self._count()

    def _count(self) -> None:
        self.stats.files = len(self.files)
        self.stats.symbols = sum(len(f.symbols) for f in self.files.values())
        self.stats.references = sum(len(f.references) for f in self.files.values())
        self.version += 1

    def _resolve(self, rel: str, include: Include) -> str | None:
        """Quoted: relative to the including file, then the -I dirs, then the workspace root; a unique file of that
        name anywhere in the workspace as a last resort (most projects have no compile_commands.json)."""
        directory = rel.rsplit("/", 1)[0] if "/" in rel else ""
        bases = ([] if include.system else [directory]) + self.include_dirs + [""]
        for base in bases:
            candidate = _join(base, include.target)
            if candidate in self.files:
                return candidate
        name = include.target.rsplit("/", 1)[-1]
        matches = [p for p in self._by_suffix.get(name, ()) if p == include.target or p.endswith("/" + include.target)]
        return matches[0] if len(matches) == 1 else None

    def _resolve_includes(self, rel: str) -> None:
        entry = self.files[rel]
        entry.includes = [msgspec.structs.replace(inc, resolved=self._resolve(rel, inc)) for inc in entry.includes]

    # -- incremental -------------------------------------------------------------------------------------------
    def _rel(self, path: str) -> str:
        if os.path.isabs(path):
            rel = os.path.relpath(os.path.abspath(path), self.root)
        else:
            rel = os.path.normpath(path)
        rel = rel.replace(os.sep, "/")
        if rel.startswith("../"):
            raise ContextError(f"{path!r} is outside the indexed workspace {self.root!r}")
        return rel

    def update(self, path: str, text: str | bytes) -> FileIndex:
        """Re-index one file from its new text; tree-sitter re-parses incrementally when the old tree is kept."""
        rel = self._rel(path)
        data = text.encode("utf-8", errors="surrogateescape") if isinstance(text, str) else bytes(text)
        if len(data) > self.max_file_bytes:
            raise ContextError(f"{rel}: {len(data)} bytes exceeds the {self.max_file_bytes}-byte index limit")
        parser = cparse.parser()
        masked = cparse.mask_declaration_macros(data)
        kept = self._trees.pop(rel, None)
        old_entry = self.files.get(rel)
        if kept is not None and old_entry is not None and kept[0] == old_entry.sha256:
            _, old_data, old_masked, old_tree = kept
            # Masking looks a few bytes ahead, so the masked texts can differ just outside the raw-text change.
            edit = incremental.union(
                incremental.diff_span(old_data, data),
                incremental.diff_span(old_masked, masked),
                len(old_data),
                len(data),
            )
            incremental.apply_edit(old_tree, old_masked, masked, edit)
            tree = parser.parse(masked, old_tree)
            entry = incremental.reextract(
                rel, old_entry, old_data, data, masked, tree, edit, list(old_tree.changed_ranges(tree))
            )
        else:
            tree = parser.parse(masked)
            entry = cparse.extract(rel, data, tree, masked)
        self._trees[rel] = (entry.sha256, data, masked, tree)
        while len(self._trees) > _KEPT_TREES:
            self._trees.popitem(last=False)
        self._replace(rel, entry)
        return entry

    def remember_tree(self, path: str, data: bytes) -> None:
        """Parse and keep the tree of an opened document so its first edit is already incremental."""
        rel = self._rel(path)
        masked = cparse.mask_declaration_macros(data)
        tree = cparse.parser().parse(masked)
        entry = self.files.get(rel)
        if entry is None or entry.sha256 != cparse.sha256(data):
            entry = cparse.extract(rel, data, tree, masked)
            self._replace(rel, entry)
        self._trees[rel] = (entry.sha256, data, masked, tree)

    def _replace(self, rel: str, entry: FileIndex) -> None:
        old = self.files.get(rel)
        if old is not None:
            for symbol in old.symbols:
                bucket = self._defs.get(symbol.name)
                if bucket:
                    bucket[:] = [s for s in bucket if s.file != rel]
        new_file = old is None
        self.files[rel] = entry
        if new_file:
            self._by_suffix[rel.rsplit("/", 1)[-1]].append(rel)
        self._resolve_includes(rel)
        for symbol in entry.symbols:
            self._defs[symbol.name].append(symbol)
        # Not persisted: an edited buffer is not the file on disk, which the next build reads (and caches).
        self._refs_by_name = None
        self._count()

    # -- lookups -----------------------------------------------------------------------------------------------
    def definitions(self, name: str) -> list[Symbol]:
        return list(self._defs.get(name, ()))

    def function(self, path: str, name: str) -> Symbol | None:
        entry = self.files.get(self._rel(path))
        if entry is None:
            return None
        for symbol in entry.symbols:
            if symbol.name == name and symbol.kind == k.FUNCTION:
                return symbol
        return None

    def symbol(self, path: str, name: str) -> Symbol | None:
        """The definition named `name` in `path`, preferring a function body over a prototype or other kinds."""
        entry = self.files.get(self._rel(path))
        if entry is None:
            return None
        found = [s for s in entry.symbols if s.name == name]
        found.sort(key=lambda s: _DEFINITION_PREFERENCE.get(s.kind, 3))
        return found[0] if found else None

    def symbol_at(self, path: str, line: int) -> Symbol | None:
        """The innermost symbol whose lines contain `line` (0-based)."""
        entry = self.files.get(self._rel(path))
        if entry is None:
            return None
        best: Symbol | None = None
        for symbol in entry.symbols:
            if symbol.start_line <= line <= symbol.end_line:
                if best is None or symbol.end_byte - symbol.start_byte < best.end_byte - best.start_byte:
                    best = symbol
        return best

    def references_to(self, name: str) -> list[tuple[str, Reference]]:
        if self._refs_by_name is None:
            table: dict[str, list[tuple[str, Reference]]] = defaultdict(list)
            for rel, entry in self.files.items():
                for ref in entry.references:
                    table[ref.name].append((rel, ref))
            self._refs_by_name = table
        return list(self._refs_by_name.get(name, ()))

    def references_in(self, symbol: Symbol) -> list[Reference]:
        """References located inside `symbol`'s text (its body, parameters and type)."""
        entry = self.files.get(symbol.file)
        if entry is None:
            return []
        return entry.references.between(symbol.start_byte, symbol.end_byte)

    def includes(self, path: str) -> list[str]:
        entry = self.files.get(self._rel(path))
        if entry is None:
            return []
        return [inc.resolved for inc in entry.includes if inc.resolved]

    def include_closure(self, path: str, depth: int = 8) -> dict[str, int]:
        """Files reachable through #include from `path` with their distance; include cycles terminate."""
        start = self._rel(path)
        seen = {start: 0}
        frontier = [start]
        for distance in range(1, depth + 1):
            following: list[str] = []
            for rel in frontier:
                for target in self.includes(rel):
                    if target not in seen:
                        seen[target] = distance
                        following.append(target)
            if not following:
                break
            frontier = following
        return seen

    def _visible(self, from_file: str) -> dict[str, int]:
        cached = self._closures.get(from_file)
        if cached is None or cached[0] != self.version:
            cached = (self.version, self.include_closure(from_file, depth=6))
            self._closures[from_file] = cached
        return cached[1]

    def resolve(
        self,
        name: str,
        from_file: str,
        kinds: frozenset[str] | None = None,
        *,
        visible_only: bool = False,
    ) -> Symbol | None:
        """The definition of `name` visible from `from_file`: same file, then included files, then anywhere
        (unless `visible_only`: C needs a declaration in scope, so a bare identifier never resolves across
        unrelated files)."""
        candidates = self._defs.get(name)
        if not candidates:
            return None
        if kinds is not None:
            candidates = [s for s in candidates if s.kind in kinds]
            if not candidates:
                return None
        closure = self._visible(from_file)
        if visible_only:
            candidates = [s for s in candidates if s.file in closure]
            if not candidates:
                return None
        if len(candidates) == 1:
            return candidates[0]

        def preference(symbol: Symbol) -> tuple[int, int, int]:
            if symbol.file == from_file:
                where = 0
            elif symbol.file in closure:
                where = 1 + closure[symbol.file]
            else:
                where = 100
            return (_DEFINITION_PREFERENCE.get(symbol.kind, 3), where, symbol.start_byte)

        return min(candidates, key=preference)

    def dependencies(self, symbol: Symbol) -> list[tuple[Symbol, int]]:
        """Resolved symbols `symbol` uses (callees, types, macros, globals, enumerators) with use counts,
        in order of first use."""
        counts: dict[tuple[str, str], int] = {}
        for ref in self.references_in(symbol):
            if ref.name != symbol.name:
                key = (ref.name, ref.kind)
                counts[key] = counts.get(key, 0) + 1
        merged: dict[tuple[str, int], tuple[Symbol, int]] = {}
        for (name, kind), count in counts.items():
            if kind == k.REF_CALL:
                target = self.resolve(name, symbol.file, _CALL_TARGETS)
            elif kind == k.REF_TYPE:
                target = self.resolve(name, symbol.file, k.TYPE_KINDS)
            else:
                target = self.resolve(name, symbol.file, _IDENT_TARGETS, visible_only=True)
            if target is not None:
                previous = merged.get(target.key)
                merged[target.key] = (target, count + (previous[1] if previous else 0))
        return list(merged.values())

    def paired(self, symbol: Symbol) -> Symbol | None:
        """Header prototype ↔ definition: a function's prototype (preferring headers it includes), or a
        prototype's function body (preferring files that include the prototype's header)."""
        if symbol.kind == k.FUNCTION:
            wanted, near = k.PROTOTYPE, self._visible(symbol.file)
            candidates = [s for s in self._defs.get(symbol.name, ()) if s.kind == wanted]
            return min(candidates, key=lambda s: (s.file not in near, s.file != symbol.file, s.file), default=None)
        if symbol.kind == k.PROTOTYPE:
            candidates = [s for s in self._defs.get(symbol.name, ()) if s.kind == k.FUNCTION]
            return min(
                candidates,
                key=lambda s: (symbol.file not in self._visible(s.file), s.file != symbol.file, s.file),
                default=None,
            )
        return None

    def callees(self, symbol: Symbol) -> list[Symbol]:
        names: list[str] = []
        for ref in self.references_in(symbol):
            if ref.kind == k.REF_CALL and ref.name not in names:
                names.append(ref.name)
        found = [self.resolve(n, symbol.file, k.CALLABLE_KINDS) for n in names]
        return [s for s in found if s is not None]

    def types_used(self, symbol: Symbol) -> list[Symbol]:
        names: list[str] = []
        for ref in self.references_in(symbol):
            if ref.kind == k.REF_TYPE and ref.name not in names:
                names.append(ref.name)
        found = [self.resolve(n, symbol.file, k.TYPE_KINDS) for n in names]
        return [s for s in found if s is not None]

    def source(self, path: str) -> bytes:
        rel = self._rel(path)
        with open(os.path.join(self.root, rel), "rb") as handle:
            return handle.read()

