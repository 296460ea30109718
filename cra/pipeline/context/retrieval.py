"""Retrieval tiers: seed (target and its file), dependency (includes, callees, types, macros), co-change (git
history) and metadata (identifier/keyword match with the task text). Every candidate carries its tier and features."""

from __future__ import annotations

import re
import weakref

import msgspec

from cra.pipeline.context import gitinfo, rank
from cra.pipeline.context import symbols as k
from cra.pipeline.context.index import WorkspaceIndex
from cra.pipeline.context.symbols import Symbol

SEED = "seed"
DEPENDENCY = "dependency"
COCHANGE = "cochange"
METADATA = "metadata"
TIERS = (SEED, DEPENDENCY, COCHANGE, METADATA)
FAR = 99  # graph distance of a symbol the target's dependency graph does not reach

_WORD = re.compile(r"[A-Za-z][a-z0-9]*|[A-Z]+(?![a-z])|[0-9]+")
_STOPWORDS = frozenset(
    "the and for with this that from into are was were has have not but all any can its int char void "
    "return returns const struct static unsigned long size null true false file function value values".split()
)


class SymbolCandidate(msgspec.Struct):
    symbol: Symbol
    tier: str
    distance: int  # dependency-graph hops from the target (0 = target)
    uses: int  # references to it from the symbols that pulled it in
    rank: float  # workspace PageRank, mean 1.0
    keyword_hits: int
    cochange: int  # commits the symbol's file shares with the seed file
    sibling_uses: int = 0  # neighbouring / similarly named functions of the seed file that use it
    file_uses: int = 0  # functions of the seed file that use it


class FileCandidate(msgspec.Struct):
    path: str
    tier: str
    include_distance: int  # #include hops from the seed file, FAR when not included
    graph_symbols: int  # symbols of this file in the target's dependency graph
    min_distance: int
    keyword_hits: int
    cochange: int
    neighbour_symbols: int = 0  # symbols of this file the target's neighbours or its own file use


class Retrieval(msgspec.Struct):
    target: Symbol
    keywords: list[str]
    files: list[FileCandidate]
    symbols: list[SymbolCandidate]


def keywords(text: str) -> list[str]:
    """Lower-cased identifier parts (snake_case and camelCase split) of at least 3 letters, minus stop words."""
    words: list[str] = []
    for word in _WORD.findall(text):
        low = word.lower()
        if len(low) >= 3 and low not in _STOPWORDS and not low.isdigit() and low not in words:
            words.append(low)
    return words


def _name_words(name: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(name) if len(w) >= 3}


class _WordIndex(msgspec.Struct):
    generation: int
    frequency: dict[str, int]  # word -> number of defined names containing it
    names: dict[str, set[str]]  # word -> defined names containing it


# Keyed on the build generation: names added by later single-file edits join at the next build.
_word_indexes: weakref.WeakKeyDictionary[WorkspaceIndex, _WordIndex] = weakref.WeakKeyDictionary()


def _words_of(index: WorkspaceIndex) -> _WordIndex:
    cached = _word_indexes.get(index)
    if cached is None or cached.generation != index.generation:
        names: dict[str, set[str]] = {}
        for entry in index.files.values():
            for symbol in entry.symbols:
                for word in _name_words(symbol.name):
                    names.setdefault(word, set()).add(symbol.name)
        cached = _WordIndex(index.generation, {w: len(n) for w, n in names.items()}, names)
        _word_indexes[index] = cached
    return cached


def distinctive(index: WorkspaceIndex, words: list[str]) -> list[str]:
    """Task words rare among the workspace's symbol names: a project prefix like `ggml` matches everything and
    says nothing."""
    counts = _words_of(index).frequency
    limit = max(5, index.stats.symbols // 100)
    return [w for w in words if counts.get(w, 0) <= limit]


def _better_documented(index: WorkspaceIndex, symbol: Symbol) -> Symbol:
    """A function defined without a doc comment is shown through its documented header prototype if there is one."""
    if symbol.kind != k.FUNCTION or symbol.doc:
        return symbol
    prototype = index.paired(symbol)
    return prototype if prototype is not None and prototype.doc else symbol


def dependency_graph(index: WorkspaceIndex, target: Symbol, depth: int = 2) -> dict[tuple[str, int], tuple[Symbol, int, int]]:
    """Symbols reachable from `target` → (symbol, distance, uses). Past the first hop only types and macros expand:
    a callee's own callees are rarely needed to write the target."""
    found: dict[tuple[str, int], tuple[Symbol, int, int]] = {target.key: (target, 0, 0)}
    frontier = [target]
    for distance in range(1, depth + 1):
        following: list[Symbol] = []
        for symbol in frontier:
            if distance > 1 and symbol.kind not in k.TYPE_KINDS and symbol.kind not in (k.MACRO, k.MACRO_FUNCTION):
                continue
            for used, count in index.dependencies(symbol):
                if used.kind == k.ENUMERATOR and used.parent:
                    parent = index.resolve(used.parent, used.file, k.TYPE_KINDS)
                    used = parent or used
                used = _better_documented(index, used)
                if used.key == target.key or used.name == target.name:
                    continue
                previous = found.get(used.key)
                if previous is None:
                    found[used.key] = (used, distance, count)
                    following.append(used)
                elif previous[1] == distance:
                    found[used.key] = (used, distance, previous[2] + count)
        frontier = following
    return found


def _siblings(index: WorkspaceIndex, target: Symbol, nearby: int = 4, similar: int = 4) -> list[Symbol]:
    """Functions of the seed file next to the target or sharing words of its name: code written alongside the
    target tends to use the same helpers, types and macros, which matters most when the body is still empty."""
    entry = index.files.get(target.file)
    functions = [s for s in entry.symbols if s.kind == k.FUNCTION] if entry else []
    position = next((i for i, s in enumerate(functions) if s.key == target.key), None)
    chosen: dict[tuple[str, int], Symbol] = {}
    if position is not None:
        for s in functions[max(0, position - nearby) : position + nearby + 1]:
            chosen[s.key] = s
    words = _name_words(target.name)
    scored = sorted(
        (s for s in functions if s.key not in chosen),
        key=lambda s: (-len(_name_words(s.name) & words), abs(s.start_byte - target.start_byte)),
    )
    for s in scored[:similar]:
        if _name_words(s.name) & words:
            chosen[s.key] = s
    chosen.pop(target.key, None)
    return [s for s in chosen.values() if not s.is_stub]


def sibling_usage(index: WorkspaceIndex, target: Symbol) -> dict[tuple[str, int], tuple[Symbol, int]]:
    usage: dict[tuple[str, int], tuple[Symbol, int]] = {}
    for sibling in _siblings(index, target):
        for used, _count in index.dependencies(sibling):
            if used.kind == k.ENUMERATOR and used.parent:
                used = index.resolve(used.parent, used.file, k.TYPE_KINDS) or used
            used = _better_documented(index, used)
            if used.name in (target.name, sibling.name):
                continue
            previous = usage.get(used.key)
            usage[used.key] = (used, (previous[1] if previous else 0) + 1)
    return usage


def file_usage(index: WorkspaceIndex, path: str, limit: int = 40, minimum: int = 3) -> list[tuple[Symbol, int]]:
    """The workspace symbols most functions of `path` use (at least `minimum` of them): a file's vocabulary."""
    entry = index.files.get(path)
    if entry is None:
        return []
    users: dict[tuple[str, str], set[str]] = {}
    refs = entry.references
    kinds = [k.REF_KINDS[code] for code in refs.kind_codes().tolist()]
    for name, kind, owner in zip(refs.name_list(), kinds, refs.owner_list()):
        if owner and (kind != k.REF_IDENT or name.isupper()):  # lower-case idents: often locals
            users.setdefault((name, kind), set()).add(owner)
    common = sorted(
        ((key, len(who)) for key, who in users.items() if len(who) >= minimum), key=lambda item: (-item[1], item[0])
    )
    result: list[tuple[Symbol, int]] = []
    seen: set[tuple[str, int]] = set()
    for (name, kind), count in common:
        wanted = k.TYPE_KINDS if kind == k.REF_TYPE else None
        symbol = index.resolve(name, path, wanted, visible_only=kind == k.REF_IDENT)
        if symbol is None or symbol.key in seen:
            continue
        if symbol.kind == k.ENUMERATOR and symbol.parent:
            symbol = index.resolve(symbol.parent, symbol.file, k.TYPE_KINDS) or symbol
        seen.add(symbol.key)
        result.append((symbol, count))
        if len(result) == limit:
            break
    return result


def retrieve(
    index: WorkspaceIndex,
    target: Symbol,
    task_text: str = "",
    *,
    depth: int = 2,
    use_git: bool = True,
    max_metadata: int = 40,
) -> Retrieval:
    ranks = rank.symbol_ranks(index)
    words = keywords(" ".join((task_text, target.name, target.doc)))
    word_set = set(distinctive(index, words))
    includes = index.include_closure(target.file, depth=depth + 1)
    co = gitinfo.cochange(index.root, index.cache.directory if index.cache else None) if use_git else None
    co_pairs = co.pairs.get(target.file, {}) if co else {}

    def hits(symbol: Symbol) -> int:
        return len(_name_words(symbol.name) & word_set)

    chosen: dict[tuple[str, int], SymbolCandidate] = {}
    graph = dependency_graph(index, target, depth)
    for key, (symbol, distance, uses) in graph.items():
        tier = SEED if symbol.file == target.file else DEPENDENCY
        chosen[key] = SymbolCandidate(
            symbol, tier, distance, uses, ranks.get(symbol.name, 0.0), hits(symbol), co_pairs.get(symbol.file, 0)
        )
    # Symbols the target's neighbours use: tier 1 when they live in the seed file, tier 2 otherwise.
    for key, (symbol, count) in sibling_usage(index, target).items():
        existing = chosen.get(key)
        if existing is not None:
            existing.sibling_uses = count
        else:
            tier = SEED if symbol.file == target.file else DEPENDENCY
            chosen[key] = SymbolCandidate(
                symbol, tier, FAR, 0, ranks.get(symbol.name, 0.0), hits(symbol), co_pairs.get(symbol.file, 0), count
            )
    # The seed file's vocabulary: what most of its functions use is likely what a new body there uses.
    for symbol, count in file_usage(index, target.file):
        symbol = _better_documented(index, symbol)
        if symbol.name == target.name:
            continue
        existing = chosen.get(symbol.key)
        if existing is not None:
            existing.file_uses = count
        else:
            tier = SEED if symbol.file == target.file else DEPENDENCY
            chosen[symbol.key] = SymbolCandidate(
                symbol, tier, FAR, 0, ranks.get(symbol.name, 0.0), hits(symbol), co_pairs.get(symbol.file, 0),
                0, count,
            )
    # Tier 1: the rest of the seed file (static helpers, file-local types) is the most likely context.
    seed_entry = index.files.get(target.file)
    for symbol in seed_entry.symbols if seed_entry else ():
        if symbol.kind == k.ENUMERATOR or symbol.name == target.name:
            continue
        shown = _better_documented(index, symbol)
        if symbol.key not in chosen and shown.key not in chosen:
            chosen[shown.key] = SymbolCandidate(shown, SEED, FAR, 0, ranks.get(symbol.name, 0.0), hits(symbol), 0)
    # Tier 3: symbols of files that changed together with the seed file, if their names share task words.
    for path, count in co_pairs.items():
        entry = index.files.get(path)
        for symbol in entry.symbols if entry else ():
            h = hits(symbol)
            if h and symbol.key not in chosen and symbol.kind != k.ENUMERATOR:
                chosen[symbol.key] = SymbolCandidate(symbol, COCHANGE, FAR, 0, ranks.get(symbol.name, 0.0), h, count)
    # Tier 4: anywhere in the workspace, names sharing words with the task (through the word → names index).
    if word_set:
        words_index = _words_of(index).names
        matching: set[str] = set()
        for word in word_set:
            matching |= words_index.get(word, set())
        metadata: list[SymbolCandidate] = []
        for name in matching:
            for symbol in index.definitions(name):
                if symbol.key in chosen or symbol.kind in (k.ENUMERATOR, k.PROTOTYPE):
                    continue
                metadata.append(
                    SymbolCandidate(
                        symbol, METADATA, FAR, 0, ranks.get(symbol.name, 0.0), hits(symbol), co_pairs.get(symbol.file, 0)
                    )
                )
        metadata.sort(key=lambda c: (-c.keyword_hits, -c.rank, c.symbol.file, c.symbol.start_byte))
        for candidate in metadata[:max_metadata]:
            chosen[candidate.symbol.key] = candidate
    symbols = sorted(chosen.values(), key=lambda c: (c.symbol.file, c.symbol.start_byte, c.symbol.name_byte))
    files: dict[str, FileCandidate] = {}
    for path, distance in includes.items():
        tier = SEED if path == target.file else DEPENDENCY
        files[path] = FileCandidate(path, tier, distance, 0, FAR, 0, co_pairs.get(path, 0))
    for candidate in symbols:
        path = candidate.symbol.file
        file_entry = files.get(path)
        if file_entry is None:
            file_entry = files[path] = FileCandidate(
                path, candidate.tier, FAR, 0, FAR, 0, co_pairs.get(path, 0)
            )
        elif _tier_order(candidate.tier) < _tier_order(file_entry.tier):
            file_entry.tier = candidate.tier
        if candidate.distance < FAR:
            file_entry.graph_symbols += 1
            file_entry.min_distance = min(file_entry.min_distance, candidate.distance)
        if candidate.sibling_uses or candidate.file_uses:
            file_entry.neighbour_symbols += 1
        file_entry.keyword_hits += candidate.keyword_hits
    return Retrieval(target, words, sorted(files.values(), key=lambda f: f.path), symbols)


def _tier_order(tier: str) -> int:
    return TIERS.index(tier)
