"""Normalizers map one upstream row to one or more draft records.

A normalizer is registered under a name that catalog entries use (`normalizer: flan_cot`). Its factory
takes the catalog entry and the file's subset name and returns `normalize(row) -> draft | [drafts]`,
where a draft is a dict with `instruction`, `input`, `output`, optional `history` (list of
`{"user", "assistant"}`), `meta` (dict of unused upstream fields), `tags` (extra tags), and since
record schema 1.1.0 `system` (a system prompt / meta instruction) and `rejected` (the dispreferred
answer of a pairwise-preference row).
A row that cannot become a record raises `RejectRow(field, reason)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.errors import CatalogError

Draft = dict[str, Any]
Normalize = Callable[[dict[str, Any]], "Draft | list[Draft]"]
Factory = Callable[[DatasetEntry, str], Normalize]

NORMALIZERS: dict[str, Factory] = {}


class RejectRow(Exception):
    """This row cannot become a record; `field` names the upstream field at fault."""

    def __init__(self, field: str | None, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}" if field else reason)


def register(name: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        NORMALIZERS[name] = factory
        return factory

    return deco


def get_normalizer(entry: DatasetEntry, subset: str, name: str | None = None) -> Normalize:
    """The row function for one file of `entry` (`name` overrides the entry's normalizer)."""
    name = name or entry.normalizer
    try:
        factory = NORMALIZERS[name]
    except KeyError:
        raise CatalogError(
            f"dataset {entry.key!r}: unknown normalizer {name!r}; "
            f"known: {', '.join(sorted(NORMALIZERS))}"
        ) from None
    return factory(entry, subset)


def text_field(row: dict[str, Any], column: str, *, required: bool) -> str:
    """A string column of `row`; a missing optional column is ''."""
    value = row.get(column)
    if value is None:
        if required:
            raise RejectRow(column, "missing field" if column not in row else "field is null")
        return ""
    if not isinstance(value, str):
        raise RejectRow(column, f"expected a string, got {type(value).__name__}")
    return value


def _import_all() -> None:
    """Import every module of this package, so each registers its normalizers: adding a format is
    adding a file, with no list to edit."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_all()
