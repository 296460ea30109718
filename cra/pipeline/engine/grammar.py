"""msgspec Struct → JSON schema → GBNF grammar, and decoding of grammar-constrained output back into the Struct."""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

import msgspec

from .errors import InvalidRequestError, StructuredOutputError
from .types import Generation

T = TypeVar("T")

# The converter's own string-char rule admits raw control characters, which JSON (and msgspec) reject.
_JSON_CHAR_RULE = (
    r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
)


def _inline_refs(schema: Any, defs: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Replace msgspec's "#/$defs/Name" references by the definitions (the converter cannot resolve them)."""
    if isinstance(schema, list):
        return [_inline_refs(item, defs, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen:
            raise InvalidRequestError(f"recursive type {name!r} cannot be turned into an output grammar")
        merged = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return _inline_refs(merged, defs, (*seen, name))
    return {k: _inline_refs(v, defs, seen) for k, v in schema.items() if k != "$defs"}


@functools.lru_cache(maxsize=256)
def gbnf_for(struct_type: Any) -> str:
    """The GBNF grammar accepting exactly the JSON encodings of `struct_type` (cached per type)."""
    # Imported here: importing llama_cpp loads llama.cpp, which a remote engine's process may never need.
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        schema = msgspec.json.schema(struct_type)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"cannot build a JSON schema for {struct_type!r}: {exc}") from exc
    schema = _inline_refs(schema, schema.get("$defs", {}))
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises bare exceptions for unsupported schema features
        raise InvalidRequestError(f"cannot turn the JSON schema of {struct_type!r} into a grammar: {exc}") from exc
    lines = [(_JSON_CHAR_RULE if line.startswith("char ::=") else line) for line in grammar.splitlines()]
    # A 16-digit exponent overflows a double (msgspec rejects it): two digits keep every number in range.
    lines = [line.replace("([eE] [-+]? integral-part)?", "([eE] [-+]? [0-9] [0-9]?)?") for line in lines]
    return "\n".join(lines) + "\n"


def structured_result(gen: Generation, struct_type: type[T], max_tokens: int) -> tuple[T, Generation]:
    """A structured call's answer, whichever engine produced it: a generation cut by the token budget is an error
    that says so (the JSON is incomplete, not wrong), otherwise the decoded Struct."""
    if gen.stats.finish_reason == "length":
        name = getattr(struct_type, "__name__", str(struct_type))
        raise StructuredOutputError(
            f"the token budget ({max_tokens}) ran out before the {name} JSON was complete; "
            "raise max_tokens or shorten the expected output",
            gen.text,
        )
    return decode_structured(gen.text, struct_type), gen


def decode_structured(text: str, struct_type: type[T]) -> T:
    """Decode grammar-constrained output; the grammar covers syntax and types, msgspec also checks constraints."""
    try:
        return msgspec.json.decode(text.encode("utf-8"), type=struct_type)
    except msgspec.ValidationError as exc:
        raise StructuredOutputError(
            f"the model's JSON does not validate as {getattr(struct_type, '__name__', struct_type)}: {exc}", text
        ) from exc
    except msgspec.DecodeError as exc:
        raise StructuredOutputError(f"the model's output is not complete JSON: {exc}", text) from exc
