"""Search on the real database: one hit per row, chunks on request, min_score, pages, filters on
registered columns, hybrid (keyword + vector) search in English and Chinese, and the search log."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import numpy as np
import pytest

from embedq.errors import InvalidInput
from embedq.listener import Listener, ListenerConfig
from embedq.search import parse_filters, search
from embedq.testing import CountingEmbedder, HashEmbedder

TOY = "toy-3d"


class ToyEmbedder:
    """Query vectors chosen by the test: the geometry of a search is then known exactly."""

    provider = "test"
    model = TOY
    dimensions = 3
    max_input_tokens = 1000

    def __init__(self, queries: dict[str, Sequence[float]]) -> None:
        self.queries = queries

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("the toy vectors are written by the test")

    async def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.queries[text], dtype=np.float32)


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float64)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


async def store(conn, content_type: str, source_id: str, chunk_index: int, vector, content: str, metadata=None):
    await conn.execute(
        "INSERT INTO embedq.embeddings (content_type, source_id, model, chunk_index, embedding, content_hash, "
        "content, metadata) VALUES ($1, $2, $3, $4, $5::vector, 'h', $6, coalesce($7::jsonb, '{}'))",
        content_type,
        source_id,
        TOY,
        chunk_index,
        vector,
        content,
        metadata,
    )


@pytest.fixture
async def toy(conn):
    """A lesson whose three chunks all lie near the query, and four posts further away."""
    await conn.execute("SELECT embedq.model_ensure($1, 'test', 3)", TOY)
    await store(conn, "lesson", "1", 0, unit(1, 0.05, 0), "lesson one, part one")
    await store(conn, "lesson", "1", 1, unit(1, 0.01, 0), "lesson one, part two")
    await store(conn, "lesson", "1", 2, unit(1, 0.1, 0), "lesson one, part three")
    for i, angle in enumerate((0.3, 0.5, 0.8, 1.5), start=1):
        await store(conn, "post", str(i), 0, unit(1, angle, 0), f"post {i}")
    return ToyEmbedder({"q": [1, 0, 0]})


def keys(hits) -> list[tuple[str, str, int]]:
    return [(h.content_type, h.source_id, h.chunk_index) for h in hits]


async def test_a_row_is_one_hit_with_its_best_chunk_unless_chunks_are_asked_for(conn, toy):
    hits = await search(conn, toy, "q", k=3)
    assert keys(hits) == [("lesson", "1", 1), ("post", "1", 0), ("post", "2", 0)]
    assert hits[0].content == "lesson one, part two" and hits[0].score == pytest.approx(hits[0].similarity)

    chunks = await search(conn, toy, "q", k=3, chunks=True)
    assert keys(chunks) == [("lesson", "1", 1), ("lesson", "1", 0), ("lesson", "1", 2)]


async def test_min_score_drops_hits_less_similar_than_it(conn, toy):
    cosine_of_post_2 = 1 / np.sqrt(1 + 0.5**2)
    hits = await search(conn, toy, "q", k=10, min_score=cosine_of_post_2 - 1e-6)
    assert keys(hits) == [("lesson", "1", 1), ("post", "1", 0), ("post", "2", 0)]
    assert min(h.similarity for h in hits) >= cosine_of_post_2 - 1e-6
    assert await search(conn, toy, "q", k=10, min_score=0.99999) == []


async def test_pages_follow_each_other_without_overlap(conn, toy):
    everything = keys(await search(conn, toy, "q", k=5))
    pages = [keys(await search(conn, toy, "q", k=2, offset=offset)) for offset in (0, 2, 4)]
    assert [hit for page in pages for hit in page] == everything
    assert len(everything) == 5 and pages[2] == everything[4:]
    assert await search(conn, toy, "q", k=2, offset=5) == []


async def test_sql_search_takes_the_same_options(conn, toy):
    rows = await conn.fetch(
        "SELECT content_type, source_id, chunk_index FROM embedq.search($1::vector, 2, match_offset => 1, "
        "content_types => ARRAY['post'], min_score => 0.5)",
        unit(1, 0, 0),
    )
    assert [tuple(r) for r in rows] == [("post", "2", 0), ("post", "3", 0)]
    with pytest.raises(asyncpg.InvalidParameterValueError, match="match_offset"):
        await conn.fetch("SELECT * FROM embedq.search($1::vector, 2, match_offset => -1)", unit(1, 0, 0))


async def test_searches_are_logged_with_their_origin_and_sql_callers_opt_in(conn, toy):
    await search(conn, toy, "q", k=2, origin="python")
    await conn.fetch("SELECT * FROM embedq.search($1::vector, 3)", unit(1, 0, 0))
    assert await conn.fetchval("SELECT count(*) FROM embedq.search_log") == 1

    await conn.fetch("SELECT * FROM embedq.search($1::vector, 3, log => true)", unit(1, 0, 0))
    await conn.fetch(
        "SELECT * FROM embedq.hybrid_search('post 2', $1::vector, 4, content_types => ARRAY['post'], log => true)",
        unit(1, 0, 0),
    )
    logged = [
        tuple(r)
        for r in await conn.fetch(
            "SELECT origin, query, model, content_types, match_count, result_count FROM embedq.search_log ORDER BY id"
        )
    ]
    assert logged == [
        ("python", "q", TOY, None, 2, 2),
        ("sql", None, TOY, None, 3, 3),
        ("sql", "post 2", TOY, ["post"], 4, 4),
    ]


async def test_hybrid_search_puts_exact_tokens_first_in_english_and_chinese(conn, toy):
    await store(conn, "course", "7", 0, unit(0, 1, 0), "Course code: CS-4821. Indexes and query plans.")
    await store(conn, "course", "8", 0, unit(0, 0.9, 0.1), "Course code: CS-2150. Data wrangling with pandas.")
    await store(conn, "lesson", "9", 0, unit(0, 0, 1), "醋要用香醋或保宁醋，起锅前沿锅边淋入。")
    await store(conn, "lesson", "10", 0, unit(0, 0.1, 1), "麻婆豆腐讲究麻、辣、烫、香、酥、嫩六个字。")
    for i in range(1, 31):  # common words are common
        await store(conn, "comment", str(i), 0, unit(1, 0.5, 0.05 * i), f"What is it about? Comment {i} is about it.")
    embedder = ToyEmbedder({"what is CS-4821 about": [1, 0, 0], "保宁醋": [1, 0, 0], "4821": [1, 0, 0]})

    for text, expected in (("what is CS-4821 about", "7"), ("4821", "7"), ("保宁醋", "9")):
        vector_hits = await search(conn, embedder, text, k=3)
        assert expected not in [h.source_id for h in vector_hits]  # far from the query vector
        hybrid_hits = await search(conn, embedder, text, k=3, hybrid=True)
        assert hybrid_hits[0].source_id == expected, (text, hybrid_hits)

    # the keyword list alone: only the text that holds the rare token, not every text with "is"
    rows = await conn.fetch(
        "SELECT source_id, keyword_rank, semantic_rank FROM embedq.hybrid_search("
        "'what is CS-4821 about', $1::vector, 10, semantic_weight => 0) WHERE keyword_rank IS NOT NULL",
        unit(1, 0, 0),
    )
    assert [r["source_id"] for r in rows] == ["7"]
    # 麻婆豆腐 inside a sentence is found from a question around it
    rows = await conn.fetch(
        "SELECT source_id FROM embedq.hybrid_search('麻婆豆腐怎么做', $1::vector, 10, semantic_weight => 0) "
        "WHERE keyword_rank IS NOT NULL",
        unit(1, 0, 0),
    )
    assert [r["source_id"] for r in rows] == ["10"]


async def test_a_hybrid_hit_shows_the_chunk_that_holds_the_words(conn, toy):
    await store(conn, "lesson", "1", 3, unit(0, 1, 0), "appendix: the error code E-7731 explained")
    embedder = ToyEmbedder({"E-7731": [1, 0, 0]})
    row_hits = await search(conn, embedder, "E-7731", k=3, hybrid=True)
    assert keys(row_hits)[0] == ("lesson", "1", 3)  # not its nearest chunk, 1
    assert row_hits[0].similarity == pytest.approx(1 / np.sqrt(1 + 0.01**2), abs=1e-6)  # the row's best
    chunk_hits = await search(conn, embedder, "E-7731", k=3, hybrid=True, chunks=True)
    assert keys(chunk_hits)[0] == ("lesson", "1", 3) and chunk_hits[0].similarity == pytest.approx(0, abs=1e-6)
    assert len(set(keys(chunk_hits))) == 3


async def test_hybrid_scores_are_normalised_and_say_where_a_hit_came_from(conn, toy):
    await store(conn, "course", "7", 0, unit(1, 0.02, 0), "Course code: CS-4821.")
    rows = await conn.fetch(
        "SELECT source_id, score, similarity, semantic_rank, keyword_rank FROM embedq.hybrid_search("
        "'CS-4821', $1::vector, 3)",
        unit(1, 0, 0),
    )
    assert rows[0]["source_id"] == "7" and rows[0]["keyword_rank"] == 1 and rows[0]["semantic_rank"] == 2
    assert 0 < rows[0]["score"] < 1 and rows[1]["score"] < rows[0]["score"]
    assert rows[0]["similarity"] == pytest.approx(1 / np.sqrt(1 + 0.02**2), abs=1e-6)
    with pytest.raises(asyncpg.InvalidParameterValueError, match="not both 0"):
        await conn.fetch(
            "SELECT * FROM embedq.hybrid_search('x', $1::vector, full_text_weight => 0, semantic_weight => 0)",
            unit(1, 0, 0),
        )


# -- filters ----------------------------------------------------------------------------------


def listener_for(dsn, settings, embedder) -> Listener:
    return Listener(dsn, embedder, settings, ListenerConfig(batch_size=64, batch_window=0.0, poll_interval=0.2))


async def register_courses_with_filters(conn, *filters: str) -> None:
    await conn.execute(
        "SELECT embedq.register_source('course', 'embedq_sample.courses', ARRAY['title', 'category', 'tags'], 2, "
        "filters => $1::text[])",
        list(filters),
    )


async def test_filters_keep_rows_whose_registered_columns_match(conn, dsn, settings):
    await register_courses_with_filters(conn, "category", "tags", "price_cents")
    await conn.execute(
        "INSERT INTO embedq_sample.courses (title, category, tags, price_cents) VALUES "
        "('Sourdough', 'Baking', '{bread,beginner}', 1900), ('Croissants', 'Baking', '{pastry}', 2900), "
        "('SQL joins', 'Databases', '{sql,beginner}', 1900)"
    )
    embedder = HashEmbedder()
    await listener_for(dsn, settings, embedder).run(drain=True)
    metadata = await conn.fetchval(
        "SELECT e.metadata FROM embedq.embeddings e JOIN embedq_sample.courses c ON c.id::text = e.source_id "
        "WHERE c.title = 'Sourdough'"
    )
    assert metadata == {
        "chunks": 1,
        "filters": {"category": ["Baking"], "tags": ["bread", "beginner"], "price_cents": ["1900"]},
    }

    async def titles(**filters) -> set[str]:
        hits = await search(conn, embedder, "anything", k=10, filters=filters)
        return {h.content.splitlines()[0].removeprefix("Title: ") for h in hits}

    assert await titles(category="Baking") == {"Sourdough", "Croissants"}
    assert await titles(tags="beginner") == {"Sourdough", "SQL joins"}
    assert await titles(tags=["beginner", "bread"]) == {"Sourdough"}
    assert await titles(price_cents=1900) == await titles(price_cents="1900") == {"Sourdough", "SQL joins"}
    assert await titles(category="Baking", price_cents=1900) == {"Sourdough"}
    assert await titles(category="Gardening") == set()
    assert await titles(**parse_filters(["category=Baking", "tags=pastry"])) == {"Croissants"}

    with pytest.raises(InvalidInput, match=r"updated_at is not a filterable column .*category, price_cents, tags"):
        await titles(updated_at="2024")
    with pytest.raises(InvalidInput, match="must be a string, a number, a boolean or an array"):
        await titles(category={"nested": "object"})
    with pytest.raises(InvalidInput, match="not KEY=VALUE"):
        parse_filters(["category"])


async def test_a_change_of_a_filterable_column_updates_metadata_without_embedding(conn, dsn, settings):
    await register_courses_with_filters(conn, "price_cents")
    course = await conn.fetchval(
        "INSERT INTO embedq_sample.courses (title, category, price_cents) "
        "VALUES ('Long text course', 'Baking', 1900) RETURNING id"
    )
    counting = CountingEmbedder(HashEmbedder())
    await listener_for(dsn, settings, counting).run(drain=True)
    calls = counting.document_calls
    assert [h.source_id for h in await search(conn, counting, "x", filters={"price_cents": 1900})] == [str(course)]

    await conn.execute("UPDATE embedq_sample.courses SET price_cents = 2500 WHERE id = $1", course)
    totals = await listener_for(dsn, settings, counting).run(drain=True)
    assert totals.done == 1 and counting.document_calls == calls  # queued, and no embedding call
    assert await search(conn, counting, "x", filters={"price_cents": 1900}) == []
    assert [h.source_id for h in await search(conn, counting, "x", filters={"price_cents": 2500})] == [str(course)]

    # a column neither embedded nor filterable still queues nothing
    await conn.execute("UPDATE embedq_sample.courses SET updated_at = now() WHERE id = $1", course)
    assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 0


async def test_filterable_columns_must_exist_once_each(conn):
    with pytest.raises(asyncpg.UndefinedColumnError, match="filterable column nope does not exist"):
        await register_courses_with_filters(conn, "nope")
    with pytest.raises(asyncpg.InvalidParameterValueError, match="contain a duplicate"):
        await register_courses_with_filters(conn, "category", "category")
    await register_courses_with_filters(conn, "category")
    assert await conn.fetchval("SELECT filters FROM embedq.sources WHERE content_type = 'course'") == ["category"]
