"""embedq.sqlalchemy with a small SQLAlchemy 2.0 application on the real database: its ORM objects
loaded for search hits, embedq's vectors read through the mapped Embedding, and the application's
Alembic autogenerate run against a database where embedq is migrated."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata, produce_migrations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import BigInteger, ForeignKey, Identity, String, Text, Uuid, create_engine, event, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import embedq
from embedq import migrations
from embedq.errors import InvalidInput
from embedq.listener import Listener
from embedq.sqlalchemy import Embedding, aload_hits, include_name, include_object, load_hits
from embedq.testing import HashEmbedder


class AppBase(DeclarativeBase):
    pass


class Author(AppBase):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)


class Article(AppBase):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("authors.id"))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)


class Note(AppBase):
    """Keyed by a uuid slug for embedq, not by its primary key."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    slug: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    text: Mapped[str] = mapped_column(String(200))


@pytest.fixture
def engine(dsn):
    engine = create_engine(migrations.sqlalchemy_url(dsn))
    with engine.begin() as connection:
        # an application database holds the application and embedq, not embedq's sample app
        connection.exec_driver_sql("DROP SCHEMA embedq_sample CASCADE")
    AppBase.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
async def embedded(engine, dsn, settings):
    """Articles and notes registered, written through the ORM, embedded by a real listener."""
    async with embedq.AsyncClient(settings=settings, embedder=HashEmbedder()) as client:
        await client.register_source("article", "articles", ["title", "body"], template="{title}\n{body}")
        await client.register_source("note", "notes", ["text"], key_column="slug")
        with Session(engine) as session, session.begin():
            author = Author(name="Ada")
            session.add(author)
            session.flush()
            session.add_all(
                [
                    Article(author_id=author.id, title="Sourdough", body="Feed the starter."),
                    Article(title="Knife skills", body="Keep the blade sharp."),
                    Article(title="Gone soon", body="Deleted after it was found."),
                    Note(text="A note about bread"),
                ]
            )
        await Listener(dsn, HashEmbedder(), settings).run(drain=True)
        yield client


def count_statements(engine) -> list[str]:
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return statements


async def test_load_hits_gives_the_orm_objects_in_the_hits_order_in_one_query(engine, embedded):
    hits = await embedded.search("Knife skills\n\nKeep the blade sharp.", k=10, types=["article"])
    assert len(hits) == 3
    with Session(engine) as session:
        gone = session.scalars(select(Article).where(Article.title == "Gone soon")).one()
        session.delete(gone)
        session.commit()
        statements = count_statements(engine)
        loaded = load_hits(session, hits, {"article": Article})
    assert len(statements) == 1
    assert loaded[0][1].title == "Knife skills"
    assert [hit for hit, _ in loaded] == [h for h in hits if h.source_id != str(gone.id)]
    assert all(isinstance(obj, Article) and str(obj.id) == hit.source_id for hit, obj in loaded)


async def test_load_hits_of_several_types_and_a_key_that_is_not_the_primary_key(engine, embedded):
    hits = await embedded.search("A note about bread", k=10)
    assert {h.content_type for h in hits} == {"article", "note"}
    with Session(engine) as session:
        statements = count_statements(engine)
        loaded = load_hits(session, hits, {"article": Article, "note": Note.slug})
        assert len(statements) == 2  # one per content type
        assert [hit for hit, _ in loaded] == hits
        note = next(obj for hit, obj in loaded if hit.content_type == "note")
        assert isinstance(note, Note) and note.text == "A note about bread"
        with pytest.raises(InvalidInput, match="no mapped class for content type 'note'"):
            load_hits(session, hits, {"article": Article})


async def test_aload_hits_with_an_async_session(dsn, embedded):
    hits = await embedded.search("Sourdough\n\nFeed the starter.", k=2, types=["article"])
    engine = create_async_engine(migrations.sqlalchemy_url(dsn))
    try:
        async with AsyncSession(engine) as session:
            loaded = await aload_hits(session, hits, {"article": Article})
    finally:
        await engine.dispose()
    assert loaded[0][1].title == "Sourdough"


async def test_the_mapped_embedding_reads_embedqs_vectors(engine, embedded):
    embedder = HashEmbedder()
    with Session(engine) as session:
        stored = session.scalars(select(Embedding).where(Embedding.content_type == "article")).all()
        assert len(stored) == 3 and {e.model for e in stored} == {embedder.model}
        sourdough = next(e for e in stored if e.content.startswith("Sourdough"))
        assert np.allclose(sourdough.embedding, embedder.vector(sourdough.content))
        assert sourdough.metadata_ == {"chunks": 1}
        nearest = session.scalars(
            select(Embedding)
            .order_by(Embedding.embedding.cosine_distance(embedder.vector("Knife skills\n\nKeep the blade sharp.")))
            .limit(1)
        ).one()
        assert nearest.content.startswith("Knife skills")


def autogenerate(engine, **options):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"target_metadata": AppBase.metadata, **options})
        return compare_metadata(context, AppBase.metadata), produce_migrations(context, AppBase.metadata)


@pytest.mark.parametrize("include_schemas", [True, False])
@pytest.mark.parametrize(
    "hooks",
    [{"include_object": include_object}, {"include_object": include_object, "include_name": include_name}],
    ids=["include_object", "both hooks"],
)
def test_autogenerate_of_the_application_never_sees_embedq(engine, embedded, include_schemas, hooks):
    diffs, script = autogenerate(engine, include_schemas=include_schemas, **hooks)
    assert diffs == []
    assert script.upgrade_ops.is_empty()


def test_without_the_hooks_autogenerate_would_drop_embedq(engine, embedded):
    """What the hooks prevent: the application's migration would drop embedq's tables."""
    diffs, _ = autogenerate(engine, include_schemas=True)
    removed = {(d[1].schema, d[1].name) for d in diffs if isinstance(d, tuple) and d[0] == "remove_table"}
    assert {("embedq", "embeddings"), ("embedq", "jobs"), ("embedq", "alembic_version")} <= removed
    assert {schema for schema, _ in removed} == {"embedq"}
