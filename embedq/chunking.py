"""Text to chunks that fit a model's input, with overlap. Pure functions, tested by tables.

The text is cut once into pieces (a word with its trailing whitespace, or a single CJK/kana/
hangul character), each remembering how strong the boundary after it is (paragraph, sentence,
word, none). Every distinct piece is counted once; chunks are packed from the summed counts and
only the emitted chunk is counted again, because real tokenizers are not additive across pieces.
A chunk that turns out too large is packed again with a smaller budget.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import accumulate

TokenCounter = Callable[[str], int]

#: strength of the boundary after a piece; the packer cuts at the strongest one it can
NONE, WORD, SENTENCE, PARAGRAPH = 0, 1, 2, 3

# Scripts written without spaces between words: every character is a piece of its own.
# U+3000 (ideographic space) is left out on purpose: it is whitespace, so it ends a piece.
_CJK = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3001-\u303f"  # CJK symbols and punctuation
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3100-\u4dbf"  # Bopomofo, Hangul compatibility Jamo, Kanbun, enclosed CJK, extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\ua960-\ua97f"  # Hangul Jamo extended A
    "\uac00-\ud7ff"  # Hangul syllables, Jamo extended B
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\ufe30-\ufe4f"  # CJK compatibility forms
    "\uff00-\uffef"  # halfwidth and fullwidth forms
    "\U00020000-\U0003ffff"  # CJK extensions B to H
)
_PIECE = re.compile(rf"[{_CJK}]\s*|[^\s{_CJK}]+\s*|\s+")
_SENTENCE_ENDS = frozenset(".!?…‼⁇⁈⁉。！？｡")
_CLOSERS = "\"'”’»)]」』）"
#: end a sentence (or clause) even when no space follows, as in Chinese and Japanese
_CJK_SENTENCE_ENDS = frozenset("。！？｡")
_CJK_CLAUSE_ENDS = frozenset("，、；：")

#: bounds on how far the measured/estimated token ratio of one chunk steers the next one
_MIN_RATIO, _MAX_RATIO = 1 / 16, 16.0
#: texts up to this many characters per allowed token are measured whole before being split
_SHORT_CHARS_PER_TOKEN = 16
#: what piece estimates are measured after ("x w" minus "x")
_PROBE = "x"


def chunk_text(text: str, max_tokens: int, overlap_tokens: int, count_tokens: TokenCounter) -> list[str]:
    """Chunks of `text`, each with count_tokens(chunk) <= max_tokens, stripped.

    Cuts at a paragraph break if one lies in the second half of the window, else at a sentence
    end, else between words (between characters in CJK text); a piece longer than max_tokens
    on its own is cut wherever the counter allows. Each chunk after the first starts with about
    overlap_tokens tokens of whole pieces from the end of the previous one.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(
            f"overlap_tokens must be at least 0 and less than max_tokens ({max_tokens}), got {overlap_tokens}"
        )
    text = text.strip()
    if not text:
        return []
    if len(text) <= max_tokens * _SHORT_CHARS_PER_TOKEN and count_tokens(text) <= max_tokens:
        return [text]
    pieces, tokens, levels = _split_pieces(text, max_tokens, count_tokens)
    return _pack(pieces, tokens, levels, max_tokens, overlap_tokens, count_tokens)


def _split_pieces(text: str, max_tokens: int, count_tokens: TokenCounter) -> tuple[list[str], list[int], list[int]]:
    """(pieces, estimated tokens of each, boundary level after each); "".join(pieces) == text.

    A piece's estimate is what it adds to a text it is appended to, so that a counter with a
    constant offset (special tokens, a lone "▁" for the empty string) still sums up. A piece
    that may be over max_tokens on its own is measured alone and hard-split if it is.
    """
    pieces: list[str] = []
    tokens: list[int] = []
    levels: list[int] = []
    probe = count_tokens(_PROBE)
    estimates: dict[str, int] = {}
    hard_parts: dict[str, list[str] | None] = {}  # the parts of each piece that does not fit alone

    def estimate(core: str) -> int:
        found = estimates.get(core)
        if found is None:
            found = estimates[core] = max(count_tokens(f"{_PROBE} {core}") - probe, 0) if core else 0
        return found

    def parts_of(core: str) -> list[str] | None:
        if core in hard_parts:
            return hard_parts[core]
        if estimate(core) * 4 < max_tokens or count_tokens(core) <= max_tokens:
            hard_parts[core] = None
        else:
            hard_parts[core] = _hard_split(core, max_tokens, count_tokens)
        return hard_parts[core]

    for match in _PIECE.finditer(text):
        piece = match.group()
        core = piece.rstrip()
        level = _level_after(piece, core)
        parts = parts_of(core)
        if parts is None:
            pieces.append(piece)
            tokens.append(estimate(core))
            levels.append(level)
            continue
        for part in parts:
            pieces.append(part)
            tokens.append(estimate(part))
            levels.append(NONE)
        pieces[-1] += piece[len(core) :]
        levels[-1] = level
    return pieces, tokens, levels


def _level_after(piece: str, core: str) -> int:
    if len(core) == len(piece):
        last = core[-1:]
        if last in _CJK_SENTENCE_ENDS:
            return SENTENCE
        return WORD if last in _CJK_CLAUSE_ENDS else NONE
    newlines = piece.count("\n", len(core))
    if newlines >= 2:
        return PARAGRAPH
    if newlines == 1 or core.rstrip(_CLOSERS)[-1:] in _SENTENCE_ENDS:
        return SENTENCE
    return WORD


def _hard_split(text: str, max_tokens: int, count_tokens: TokenCounter) -> list[str]:
    """`text` (no spaces to cut at) in consecutive parts of at most max_tokens tokens each.

    Searches each part's length exponentially then by bisection, so a long run costs a few
    counts per part instead of one per character. A single character over max_tokens still
    becomes a part of its own.
    """
    parts: list[str] = []
    rest = text
    while rest:
        length = _longest_fitting_prefix(rest, max_tokens, count_tokens)
        parts.append(rest[:length])
        rest = rest[length:]
    return parts


def _longest_fitting_prefix(text: str, max_tokens: int, count_tokens: TokenCounter) -> int:
    fits, hard_parts = 0, len(text) + 1
    probe = max_tokens
    while True:
        if probe >= len(text):
            if count_tokens(text) <= max_tokens:
                return len(text)
            hard_parts = len(text)
            break
        if count_tokens(text[:probe]) > max_tokens:
            hard_parts = probe
            break
        fits, probe = probe, probe * 2
    while hard_parts - fits > 1:
        middle = (fits + hard_parts) // 2
        if count_tokens(text[:middle]) <= max_tokens:
            fits = middle
        else:
            hard_parts = middle
    return max(fits, 1)


def _pack(
    pieces: list[str],
    tokens: list[int],
    levels: list[int],
    max_tokens: int,
    overlap_tokens: int,
    count_tokens: TokenCounter,
) -> list[str]:
    n = len(pieces)
    prefix = list(accumulate(tokens, initial=0))
    chunks: list[str] = []
    # measured tokens per estimated token of the previous chunk: steers the next budget
    ratio = 1.0
    start = previous_end = 0
    while True:
        budget = max_tokens / ratio
        first_new = previous_end + 1  # every chunk takes at least one piece not seen before
        while True:
            end = bisect_right(prefix, prefix[start] + budget, lo=start) - 1
            end = min(n, max(end, first_new))
            if end < n:
                end = _best_cut(levels, prefix, start, first_new, end, budget)
            chunk = "".join(pieces[start:end]).strip()
            measured = count_tokens(chunk)
            if measured <= max_tokens or end - start == 1:
                break
            if end > first_new:
                estimated = prefix[end] - prefix[start]
                budget = estimated * max_tokens / measured if estimated > 0 else -1.0
            else:
                start += 1  # the overlap alone leaves no room: give up some of it
        if chunk:
            chunks.append(chunk)
        if end >= n:
            return chunks
        estimated = prefix[end] - prefix[start]
        if estimated > 0:
            ratio = min(max(measured / estimated, _MIN_RATIO), _MAX_RATIO)
        next_start = end
        carried = 0.0
        while next_start - 1 > start and carried + tokens[next_start - 1] * ratio <= overlap_tokens:
            next_start -= 1
            carried += tokens[next_start] * ratio
        start, previous_end = next_start, end


def _best_cut(levels: list[int], prefix: list[int], start: int, first_new: int, end: int, budget: float) -> int:
    """The end (exclusive) of the chunk starting at `start`: the strongest boundary among the
    ends that fill at least half the budget, the latest of equals."""
    lowest = max(first_new, bisect_left(prefix, prefix[start] + budget / 2, lo=start))
    best, best_level = end, levels[end - 1]
    for candidate in range(end - 1, lowest - 1, -1):
        if best_level == PARAGRAPH:
            break
        level = levels[candidate - 1]
        if level > best_level:
            best, best_level = candidate, level
    return best
