"""Item row → one text: a small template language, pure and deterministic.

Syntax: literal text with ``{field}`` placeholders; a part in ``[...]`` is optional
and appears only when every field inside it has a value. ``{{ }} [[ ]]`` are
literal braces and brackets. A field outside brackets is *required*: the item
table must have that column (a row may still leave it empty).

Values are cleaned before they are inserted: bytes that are not UTF-8 and lone
surrogates become U+FFFD (the row counts as *repaired*), list separators ``|``
become ``, ``, control characters and runs of whitespace become one space.
Separator characters at the very start of the text (left by an empty first field)
are dropped; values themselves are never trimmed of punctuation. A row whose fields
are all empty gets the fallback text (``{item_id}`` in it is replaced by the id)
and counts as a *fallback*; a text longer than ``max_chars`` is cut and counts as
*truncated*.

>>> spec = TextSpec("{title}[. Genres: {genres}]")
>>> spec.render({"title": "Heat (1995)", "genres": "Action|Crime"})
'Heat (1995). Genres: Action, Crime'
>>> spec.render({"title": "Heat (1995)", "genres": None})
'Heat (1995)'
>>> spec.text_for({"item_id": "7", "title": None, "genres": ""})
('unknown item', True, False, False)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import pyarrow as pa

from recsys.errors import ConfigError, DataError

ITEM_ID = "item_id"
TEXT_COLUMNS = ("item_id", "text", "text_hash", "is_fallback", "is_truncated", "is_repaired")

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_LEADING = " .,;:|-"
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Group:
    """A run of literals and fields; ``optional`` groups vanish when one of their fields is empty."""

    parts: tuple[str | _Field, ...]
    optional: bool

    @property
    def fields(self) -> list[str]:
        return [p.name for p in self.parts if isinstance(p, _Field)]


def parse_template(source: str, setting: str = "encoder.template") -> tuple[_Group, ...]:
    """Parse a template into groups; a malformed one is a ConfigError naming ``setting``.

    >>> [(g.optional, g.fields) for g in parse_template("{title}[. {genres}]")]
    [(False, ['title']), (True, ['genres'])]
    """
    groups: list[_Group] = []
    parts: list[str | _Field] = []
    literal: list[str] = []
    optional = False
    i = 0

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"template {source!r}: {problem}", setting=setting,
                           hint="write fields as {name}, optional parts as [...], literal braces as {{ }} and [[ ]]")

    def close_group() -> None:
        if literal:
            parts.append("".join(literal))
            literal.clear()
        if parts:
            groups.append(_Group(tuple(parts), optional))
            parts.clear()

    while i < len(source):
        char, pair = source[i], source[i:i + 2]
        if pair in ("{{", "}}", "[[", "]]"):
            literal.append(char)
            i += 2
        elif char == "{":
            end = source.find("}", i)
            name = source[i + 1:end] if end > i else ""
            if not _FIELD_NAME.fullmatch(name):
                raise fail(f"bad field at position {i}")
            if literal:
                parts.append("".join(literal))
                literal.clear()
            parts.append(_Field(name))
            i = end + 1
        elif char == "[":
            if optional:
                raise fail(f"optional parts cannot nest (position {i})")
            close_group()
            optional = True
            i += 1
        elif char == "]":
            if not optional:
                raise fail(f"']' without '[' at position {i}")
            close_group()
            optional = False
            i += 1
        elif char == "}":
            raise fail(f"'}}' without '{{' at position {i}")
        else:
            literal.append(char)
            i += 1
    if optional:
        raise fail("'[' is never closed")
    close_group()
    if not any(g.fields for g in groups):
        raise fail("it uses no field")
    return tuple(groups)


def clean_value(value: Any) -> tuple[str, bool]:
    """A field value as clean one-line text, and whether it had to be repaired.

    >>> clean_value(b"caf\\xe9  au|lait")
    ('caf\ufffd au, lait', True)
    >>> clean_value(None), clean_value(1999)
    (('', False), ('1999', False))
    """
    repaired = False
    if value is None:
        return "", False
    if isinstance(value, (bytes, bytearray)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            text, repaired = bytes(value).decode("utf-8", errors="replace"), True
    elif isinstance(value, (list, tuple)):
        pieces = [clean_value(v) for v in value]
        return ", ".join(p for p, _ in pieces if p), any(r for _, r in pieces)
    else:
        text = str(value)
    if _SURROGATE.search(text):
        text, repaired = _SURROGATE.sub("\ufffd", text), True
    text = _CONTROL.sub(" ", text.replace("|", ", "))
    return _SPACES.sub(" ", text).strip(), repaired


def text_hash(text: str) -> str:
    """128-bit content hash of a text (hex), the cache's per-item key.

    >>> text_hash("a") == text_hash("a") != text_hash("b")
    True
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class TextSpec:
    """A parsed template plus the fallback text and the length cap: everything that decides an item's text."""

    template: str
    fallback: str = "unknown item"
    max_chars: int = 4096
    setting: str = "encoder.template"
    groups: tuple[_Group, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", parse_template(self.template, self.setting))
        if self.max_chars < 1:
            raise ConfigError(f"max_chars must be at least 1, got {self.max_chars}", setting="encoder.max_chars",
                              hint="use a positive number of characters, e.g. 4096")
        if not self.fallback.strip():
            raise ConfigError("the fallback text is empty", setting="encoder.fallback_text",
                              hint="give a non-empty text, e.g. 'unknown item'")

    @property
    def fields(self) -> list[str]:
        return list(dict.fromkeys(f for g in self.groups for f in g.fields))

    @property
    def required_fields(self) -> list[str]:
        return list(dict.fromkeys(f for g in self.groups if not g.optional for f in g.fields))

    def check_columns(self, columns: list[str], where: str) -> None:
        """Raise a DataError when the item table lacks ``item_id``, a required field, or every field."""
        hint = ("set encoder.template (or encoder.templates.<dataset>) to use the columns the table has, "
                "or add the missing column to the item table")
        if ITEM_ID not in columns:
            raise DataError(f"the item table has no '{ITEM_ID}' column (columns: {columns})", file=where,
                            column=ITEM_ID, hint="prepare the dataset again with `python -m rayjobs.prepare`")
        missing = [f for f in self.required_fields if f not in columns]
        if missing:
            raise DataError(f"template {self.template!r} needs column(s) {missing}, which the item table lacks "
                            f"(columns: {columns})", file=where, column=missing[0], hint=hint)
        if not any(f in columns for f in self.fields):
            raise DataError(f"the item table has none of the text columns {self.fields} that template "
                            f"{self.template!r} uses (columns: {columns})", file=where, hint=hint)

    def render(self, row: Mapping[str, Any]) -> str | None:
        """The text of one row, or None when every field is empty."""
        return self._render(row)[0]

    def _render(self, row: Mapping[str, Any]) -> tuple[str | None, bool]:
        out: list[str] = []
        any_value = repaired = False
        for group in self.groups:
            values = {}
            for name in group.fields:
                values[name], fixed = clean_value(row.get(name))
                repaired |= fixed
            if group.optional and not all(values.values()):
                continue
            any_value |= any(values.values())
            for part in group.parts:
                text = values[part.name] if isinstance(part, _Field) else part
                if not out and not isinstance(part, _Field):
                    text = text.lstrip(_LEADING)      # a separator with nothing before it
                if text:
                    out.append(text)
        if not any_value:
            return None, repaired
        return _SPACES.sub(" ", "".join(out)).strip(), repaired

    def text_for(self, row: Mapping[str, Any]) -> tuple[str, bool, bool, bool]:
        """``(text, is_fallback, is_truncated, is_repaired)`` for one item row."""
        text, repaired = self._render(row)
        fallback = text is None
        if fallback:
            text = self.fallback.replace("{item_id}", clean_value(row.get(ITEM_ID))[0])
        truncated = len(text) > self.max_chars
        return (text[: self.max_chars] if truncated else text), fallback, truncated, repaired


def build_text_table(items: pa.Table, spec: TextSpec, where: str = "items.parquet") -> pa.Table:
    """One row per item: ``item_id, text, text_hash, is_fallback, is_truncated, is_repaired``.

    >>> table = pa.table({"item_id": ["1", "2"], "title": ["Heat", None]})
    >>> out = build_text_table(table, TextSpec("{title}[. {genres}]"))
    >>> out.column("text").to_pylist(), out.column("is_fallback").to_pylist()
    (['Heat', 'unknown item'], [False, True])
    """
    spec.check_columns(items.column_names, where)
    wanted = [ITEM_ID] + [f for f in spec.fields if f in items.column_names]
    columns = {name: items.column(name).to_pylist() for name in wanted}
    rows = [spec.text_for(dict(zip(wanted, values))) for values in zip(*columns.values())]
    texts = [r[0] for r in rows]
    return pa.table({
        "item_id": items.column(ITEM_ID).cast(pa.string()),
        "text": pa.array(texts, pa.string()),
        "text_hash": pa.array([text_hash(t) for t in texts], pa.string()),
        "is_fallback": pa.array([r[1] for r in rows], pa.bool_()),
        "is_truncated": pa.array([r[2] for r in rows], pa.bool_()),
        "is_repaired": pa.array([r[3] for r in rows], pa.bool_()),
    })


def optional_fields(template: str) -> list[str]:
    """Fields of ``template`` that sit only in optional ``[...]`` parts (the ones an item can do without).

    >>> optional_fields("{title}[. Genres: {genres}][. {description}]")
    ['genres', 'description']
    """
    groups = parse_template(template)
    required = {f for g in groups if not g.optional for f in g.fields}
    return list(dict.fromkeys(f for g in groups if g.optional for f in g.fields if f not in required))


def _escaped(literal: str) -> str:
    return literal.replace("{", "{{").replace("}", "}}").replace("[", "[[").replace("]", "]]")


def remove_field(template: str, field_name: str, setting: str = "encoder.template") -> str:
    """``template`` without the optional parts that use ``field_name`` (what a ``remove_field`` remedy does).

    Only a field in optional parts can be removed; a required field or an unknown one is a
    :class:`ConfigError` naming ``setting``.

    >>> remove_field("{title}[. Genres: {genres}][. {description}]", "genres")
    '{title}[. {description}]'
    >>> TextSpec(remove_field("{title}[. Genres: {genres}]", "genres")).render({"title": "Heat", "genres": "Crime"})
    'Heat'
    """
    groups = parse_template(template, setting)
    if field_name not in optional_fields(template):
        raise ConfigError(f"template {template!r} has no optional field {field_name!r} to remove", setting=setting,
                          hint=f"optional fields are {optional_fields(template)}; a field outside [...] is required")
    out = []
    for group in groups:
        if group.optional and field_name in group.fields:
            continue
        body = "".join(f"{{{p.name}}}" if isinstance(p, _Field) else _escaped(p) for p in group.parts)
        out.append(f"[{body}]" if group.optional else body)
    return "".join(out)
