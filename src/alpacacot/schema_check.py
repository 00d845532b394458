"""The record JSON Schema, checked on a whole row group of Arrow columns at once.

Every record is checked against `schema/record.schema.json` before it is written. Walking each record's
dict in Python (fastjsonschema's compiled code) costs ~4 µs a record, as much as the parquet write;
here the schema is compiled once, against the Arrow schema of a shard, into Arrow compute kernels that
run over the columns of a row group (~0.2 µs a record).

What the compiler does with each keyword:

- `type`, `properties`, `required`, `additionalProperties: false`, `items`: structure. `type` is one
  JSON type, or `[type, "null"]` (a nullable column: a null passes, a value is checked). The Arrow types
  must match the JSON types, every required property must be a column (or struct field) and no column may
  be outside `properties` when additional properties are refused; this is checked when the schema is
  compiled, so a schema and an Arrow layout that disagree fail at once. Per row, a null in a column that is
  not nullable is a value of the wrong type (or a missing required property).
- `pattern` (RE2, search semantics as in JSON Schema), `minLength`/`maxLength` (in code points),
  `minimum`/`maximum`, `enum`, `const`: per value, on the flattened values of lists too.

Any other validation keyword is refused when the schema is compiled, so the record schema cannot gain
a rule that is silently not checked. A row the kernels flag is reported with the path of the first rule
it breaks; `pipeline.py` then asks the per-record validator (fastjsonschema) for the exact message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "default"}
)
STRUCTURE = frozenset({"type", "properties", "required", "additionalProperties", "items"})
VALUE_RULES = frozenset(
    {"pattern", "minLength", "maxLength", "minimum", "maximum", "enum", "const"}
)

_ARROW_TYPE_OF: dict[str, Callable[[pa.DataType], bool]] = {
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "integer": pa.types.is_integer,
    "number": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t),
    "boolean": pa.types.is_boolean,
    "array": lambda t: pa.types.is_list(t) or pa.types.is_large_list(t),
    "object": pa.types.is_struct,
}


class SchemaCompileError(ValueError):
    """The JSON Schema uses something this checker cannot check, or disagrees with the Arrow layout."""


# A rule takes the values at one path (an Arrow array) and returns a boolean mask of broken values.
Rule = Callable[[pa.Array], Any]


@dataclass(frozen=True)
class _Check:
    path: str  # JSON path of the values, as fastjsonschema names it: data.provenance.row
    keyword: str
    rule: Rule


@dataclass(frozen=True)
class _Node:
    """The checks of one schema node and the nodes below it (struct fields, list items)."""

    path: str
    checks: tuple[_Check, ...]
    fields: tuple[tuple[int, _Node], ...] = ()  # struct children by field index
    items: _Node | None = None


def _value_rules(node: dict[str, Any], arrow_type: pa.DataType, path: str) -> list[_Check]:
    checks = []
    if "pattern" in node:
        pattern = node["pattern"]
        re.compile(pattern)  # valid in Python too, as fastjsonschema reads it
        pc.match_substring_regex(pa.array([], arrow_type), pattern)  # and in RE2
        checks.append(
            _Check(path, "pattern", lambda a, p=pattern: pc.invert(pc.match_substring_regex(a, p)))
        )
    if "minLength" in node:
        n = node["minLength"]
        checks.append(_Check(path, "minLength", lambda a, n=n: pc.less(pc.utf8_length(a), n)))
    if "maxLength" in node:
        n = node["maxLength"]
        checks.append(_Check(path, "maxLength", lambda a, n=n: pc.greater(pc.utf8_length(a), n)))
    if "minimum" in node:
        n = node["minimum"]
        checks.append(_Check(path, "minimum", lambda a, n=n: pc.less(a, n)))
    if "maximum" in node:
        n = node["maximum"]
        checks.append(_Check(path, "maximum", lambda a, n=n: pc.greater(a, n)))
    for keyword in ("enum", "const"):
        if keyword in node:
            allowed = node["enum"] if keyword == "enum" else [node["const"]]
            value_set = pa.array(allowed, arrow_type)
            checks.append(
                _Check(path, keyword, lambda a, s=value_set: pc.invert(pc.is_in(a, value_set=s)))
            )
    return checks


def _json_type(value: Any, path: str) -> tuple[str, bool]:
    """(JSON type, whether null is allowed too) of a `type` keyword: one type, or [type, "null"]."""
    if isinstance(value, list) and len(value) == 2 and "null" in value:
        (value,) = [t for t in value if t != "null"] or [None]
        nullable = True
    else:
        nullable = False
    if not isinstance(value, str) or value not in _ARROW_TYPE_OF:
        raise SchemaCompileError(
            f'{path}: needs one `type` of {", ".join(_ARROW_TYPE_OF)}, or [that type, "null"]'
        )
    return value, nullable


def _compile(node: dict[str, Any], arrow_type: pa.DataType, path: str) -> _Node:
    unknown = set(node) - ANNOTATIONS - STRUCTURE - VALUE_RULES
    if unknown:
        raise SchemaCompileError(f"{path}: keyword(s) {', '.join(sorted(unknown))} not supported")
    json_type, nullable = _json_type(node.get("type"), path)
    if not _ARROW_TYPE_OF[json_type](arrow_type):
        raise SchemaCompileError(f"{path}: JSON type {json_type} but Arrow type {arrow_type}")
    # A null is a value of the wrong type, unless the schema allows null (`[type, "null"]`).
    checks = [] if nullable else [_Check(path, "type", lambda a: a.is_null())]
    if json_type == "object":
        properties = node.get("properties", {})
        names = [arrow_type.field(i).name for i in range(arrow_type.num_fields)]
        missing = [name for name in node.get("required", []) if name not in names]
        if missing:
            raise SchemaCompileError(f"{path}: required {missing} not in the Arrow layout")
        if node.get("additionalProperties", True) is not True:
            if node["additionalProperties"] is not False:
                raise SchemaCompileError(f"{path}: additionalProperties must be true or false")
            extra = [name for name in names if name not in properties]
            if extra:
                raise SchemaCompileError(f"{path}: Arrow fields {extra} are not in properties")
        required = set(node.get("required", []))
        fields = []
        for i, name in enumerate(names):
            if name in properties:
                child = _compile(properties[name], arrow_type.field(i).type, f"{path}.{name}")
                if name not in required:  # an absent optional property is a null in Arrow
                    kept = tuple(c for c in child.checks if c.keyword != "type")
                    child = _Node(child.path, kept, child.fields, child.items)
                fields.append((i, child))
        return _Node(path, tuple(checks), fields=tuple(fields))
    if json_type == "array":
        items = node.get("items")
        child = _compile(items, arrow_type.value_type, f"{path}[]") if items else None
        return _Node(path, tuple(checks), items=child)
    if {"properties", "required", "items", "additionalProperties"} & set(node):
        raise SchemaCompileError(f"{path}: object/array keywords on a {json_type}")
    return _Node(path, tuple(checks + _value_rules(node, arrow_type, path)))


class ColumnarValidator:
    """`validator(batch)` -> {row index: JSON path of the first broken rule} for the rows that break one."""

    def __init__(self, schema: dict[str, Any], arrow_schema: pa.Schema):
        self.arrow_schema = arrow_schema
        self.root = _compile(schema, pa.struct(list(arrow_schema)), "data")

    def __call__(self, batch: pa.RecordBatch) -> dict[int, str]:
        if batch.schema != self.arrow_schema:
            raise ValueError(f"batch schema differs from the compiled one:\n{batch.schema}")
        rows = pa.StructArray.from_arrays(batch.columns, fields=list(batch.schema))
        broken: dict[int, str] = {}
        self._run(self.root, rows, None, broken)
        return dict(sorted(broken.items()))

    def _run(
        self, node: _Node, values: pa.Array, owners: np.ndarray | None, broken: dict[int, str]
    ) -> None:
        """Check `values`; `owners[i]` is the row value i belongs to (None: value i is row i)."""
        for check in node.checks:
            mask = check.rule(values)
            if mask.null_count:
                # A null value has already failed its type check; its other rules do not apply.
                mask = pc.fill_null(mask, False)
            if not pc.any(mask).as_py():
                continue
            hits = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            for row in hits if owners is None else owners[hits]:
                broken.setdefault(int(row), f"{check.path} ({check.keyword})")
        if node.fields:
            children = values.flatten()  # applies the struct's offset and validity to its fields
            for i, child in node.fields:
                self._run(child, children[i], owners, broken)
        if node.items is not None and len(values):
            parents = pc.list_parent_indices(values).to_numpy()
            item_owners = parents if owners is None else owners[parents]
            self._run(node.items, values.flatten(), item_owners, broken)
