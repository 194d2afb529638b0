"""Rows to text, pure functions: a row arrives as {field: value} decoded from jsonb.

A source's text comes from its registration: the `template` given to
`embedq.register_source(...)`, or, without one, every registered field in order as
`Label: value` with a label made from the column name. Users change the wording with a
template, never with code.

A template is lines of text with `{column}` placeholders (`{{` and `}}` for literal braces):

    Course: {title}
    Tags: {tags}
    {description}

- each line is one section; a line whose placeholders are all empty is left out, a line
  without placeholders is kept as written;
- a line that is a placeholder alone, or that renders to several lines, is a block: it is set
  off by blank lines so the chunker sees it as its own paragraph;
- values are cleaned (controls, whitespace, NFC); arrays become "a, b", JSON objects
  "key: value; key: value".
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any


def default_template(fields: Sequence[str]) -> str:
    """The template of a source registered without one: `Label: {field}` per registered field."""
    return "\n".join(f"{escape_literal(field_label(field))}: {{{field}}}" for field in fields)


def escape_literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def template_fields(template: str) -> list[str]:
    """The columns a template names, in order of first use. Raises ValueError for a malformed
    template (an unclosed brace, a format spec, an empty placeholder)."""
    names: list[str] = []
    for line in template.splitlines():
        for name in _line_fields(line):
            if name not in names:
                names.append(name)
    return names


def _line_fields(line: str) -> list[str]:
    names = []
    for _, name, spec, conversion in string.Formatter().parse(line):
        if name is None:
            continue
        if not name or spec or conversion:
            raise ValueError(
                f"placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} must be a plain {{column}}"
            )
        names.append(name)
    return names


def build_text(fields: Sequence[str], values: Mapping[str, Any], template: str | None = None) -> str:
    """The text embedded for one row; "" when no placeholder has any content."""
    sections: list[tuple[str, bool]] = []
    for line in (template if template is not None else default_template(fields)).splitlines():
        line = line.rstrip()
        if not line.strip():
            continue
        names = _line_fields(line)
        if not names:
            sections.append((line.replace("{{", "{").replace("}}", "}"), False))
            continue
        rendered = {name: format_value(values.get(name)) for name in names}
        if not any(rendered.values()):
            continue
        text = line.format_map(rendered)
        alone = line.strip() == f"{{{names[0]}}}" and len(names) == 1
        sections.append((text.strip() if alone else text, alone or "\n" in text))
    return join_sections(sections)


# --- labels -------------------------------------------------------------------------------------

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_LABEL_SEPARATORS = re.compile(r"[\s_\-.]+")


def field_label(name: str) -> str:
    """A readable label for a column name: "learning_objectives" -> "Learning objectives"."""
    words = _LABEL_SEPARATORS.split(_CAMEL_BOUNDARY.sub(" ", name))
    words = [word if len(word) > 1 and word.isupper() else word.lower() for word in words if word]
    if not words:
        return name
    text = " ".join(words)
    return text[0].upper() + text[1:]


def _key_label(key: object) -> str:
    return " ".join(_LABEL_SEPARATORS.split(inline(str(key)))).strip()


# --- sections -----------------------------------------------------------------------------------


def join_sections(sections: Sequence[tuple[str, bool]]) -> str:
    """One-line sections go on consecutive lines; a block (`(text, True)`) is set off by blank
    lines, so the chunker sees it as its own paragraph."""
    parts: list[str] = []
    previous_block = False
    for text, block in sections:
        if not text:
            continue
        if parts:
            parts.append("\n\n" if block or previous_block else "\n")
        parts.append(text)
        previous_block = block
    return "".join(parts)


# --- values -------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A field's value as text: strings keep their paragraphs, arrays become "a, b", json
    objects become "key: value; key: value"; empty things become ""."""
    if isinstance(value, str):
        return clean_text(value)
    return _flatten(value, inside=None)


def _flatten(value: Any, *, inside: type | None) -> str:
    """One line of text. Objects inside anything, and arrays inside arrays, get parentheses."""
    if value is None:
        return ""
    if isinstance(value, str):
        return inline(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, Mapping):
        pairs = []
        for key, item in value.items():
            text = _flatten(item, inside=dict)
            label = _key_label(key)
            if text:
                pairs.append(f"{label}: {text}" if label else text)
        return _wrap("; ".join(pairs), inside is not None)
    if isinstance(value, (list, tuple)):
        items = [_flatten(item, inside=list) for item in value]
        separator = "; " if any(isinstance(item, (Mapping, list, tuple)) for item in value) else ", "
        return _wrap(separator.join(item for item in items if item), inside is list)
    return inline(str(value))


def _wrap(text: str, wrap: bool) -> str:
    return f"({text})" if wrap and text else text


# --- cleaning -----------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAKS = re.compile("\r\n?|[\x0b\x0c\x85\u2028]")
# C0/C1 controls except \t and \n (line breaks are already "\n"), the BOM, the replacement char
_JUNK = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufeff\ufffd]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")


# What can make an ASCII text differ from its cleaned form (see _clean): line breaks other than
# \n, controls and tabs; doubled spaces, spaces at a line's ends, blank lines beyond one.
_ASCII_CONTROLS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_ASCII_SPACING = ("  ", " \n", "\n ", "\n\n\n")


def clean_text(text: str) -> str:
    """NFC, no control characters, runs of spaces/tabs collapsed, at most one blank line
    between paragraphs, stripped. Lone surrogates and U+FFFD are dropped."""
    # Most application text is clean already: one scan instead of six passes (the listener
    # cleans every field of every row it embeds).
    if (
        text.isascii()
        and text == text.strip()
        and not _ASCII_CONTROLS.search(text)
        and not any(spacing in text for spacing in _ASCII_SPACING)
    ):
        return text
    return _clean(text)


def _clean(text: str) -> str:
    if _SURROGATE.search(text):
        # pairs are joined into their character; lone halves become U+FFFD, dropped below
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = _LINE_BREAKS.sub("\n", text.replace("\u2029", "\n\n"))
    text = unicodedata.normalize("NFC", _JUNK.sub("", text))
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def inline(text: str) -> str:
    """clean_text on one line: every run of whitespace, line breaks included, becomes a space."""
    return " ".join(clean_text(text).split())
