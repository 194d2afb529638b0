"""Rows to text: one builder per content type, pure functions.

A row arrives as {field: value} decoded from jsonb. The builder registered for its content type
turns the registered fields into labelled, cleaned text; a content type without one gets the
generic builder (registered fields in order, labels from the column names), so users who register
their own tables need no code.

To give a content type its own wording, add a `Layout` (or any `TextBuilder`) to `BUILDERS`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class TextBuilder(Protocol):
    def __call__(self, fields: Sequence[str], values: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True)
class Layout:
    """Named fields in a fixed order with fixed labels (None: the value stands alone).

    Registered fields the layout does not name follow in registry order with generic labels;
    fields it names but the source does not register are left out (their changes never
    re-embed, so they must not be in the text either).
    """

    labels: tuple[tuple[str, str | None], ...] = ()

    def __call__(self, fields: Sequence[str], values: Mapping[str, Any]) -> str:
        registered = set(fields)
        named = dict(self.labels)
        ordered = [(field, label) for field, label in self.labels if field in registered]
        ordered += [(field, field_label(field)) for field in fields if field not in named]
        return join_sections([(label, format_value(values.get(field))) for field, label in ordered])


GENERIC = Layout()

BUILDERS: dict[str, TextBuilder] = {
    "profile": Layout((("display_name", "Name"), ("bio", "Bio"), ("interests", "Interests"))),
    "course": Layout(
        (
            ("title", "Course"),
            ("category", "Category"),
            ("tags", "Tags"),
            ("description", "Description"),
            ("requirements", "Requirements"),
            ("learning_objectives", "Learning objectives"),
        )
    ),
    "lesson": Layout((("title", "Lesson"), ("description", None), ("content", None))),
    "post": Layout((("title", "Post"), ("body", None))),
    "comment": Layout((("body", "Comment"),)),
}


def build_text(content_type: str, fields: Sequence[str], values: Mapping[str, Any]) -> str:
    """The text embedded for one row; "" when no registered field has any content."""
    return BUILDERS.get(content_type, GENERIC)(fields, values)


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


def join_sections(sections: Sequence[tuple[str | None, str]]) -> str:
    """Labelled one-line sections go on consecutive lines; a multi-line or unlabelled section
    is set off by blank lines, so the chunker sees it as its own paragraph."""
    parts: list[str] = []
    previous_block = False
    for label, value in sections:
        if not value:
            continue
        block = label is None or "\n" in value
        text = value if label is None else f"{label}: {value}"
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


def clean_text(text: str) -> str:
    """NFC, no control characters, runs of spaces/tabs collapsed, at most one blank line
    between paragraphs, stripped. Lone surrogates and U+FFFD are dropped."""
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
