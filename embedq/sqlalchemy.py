"""SQLAlchemy 2.0 integration.

- `Embedding`: `embedq.embeddings` mapped (pgvector's `Vector`), on a metadata of its own, so
  your application's metadata and migrations never hold it. Read it; embedq writes it.
- `load_hits(session, hits, {"article": Article})`: your ORM objects behind a list of search
  hits, one query per content type, in the hits' order (`aload_hits` for an AsyncSession).
- `include_object` and `include_name` for your Alembic `env.py`: autogenerate never proposes to
  create, change or drop anything in the `embedq` schema.

    context.configure(..., target_metadata=Base.metadata, include_schemas=True,
                      include_object=embedq.sqlalchemy.include_object,
                      include_name=embedq.sqlalchemy.include_name)
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pgvector.sqlalchemy import Vector
from sqlalchemy import DateTime, Integer, MetaData, Select, Text, cast, inspect, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Mapper, Session, mapped_column

from embedq.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

SCHEMA = "embedq"

H = TypeVar("H", bound="HitLike")


class HitLike(Protocol):
    """A search hit: embedq.Hit, a row of `SELECT * FROM embedq.search(...)`, ..."""

    @property
    def content_type(self) -> str: ...

    @property
    def source_id(self) -> str: ...


class Base(DeclarativeBase):
    """embedq's own tables; not your application's Base."""

    metadata = MetaData(schema=SCHEMA)


class Embedding(Base):
    """One chunk of a row, embedded by one model. `embedding` holds the vector's floats (a list
    with pgvector 0.5, a numpy array with 0.4)."""

    __tablename__ = "embeddings"

    content_type: Mapped[str] = mapped_column(Text, primary_key=True)
    source_id: Mapped[str] = mapped_column(Text, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    chunk_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    embedding: Mapped[Any] = mapped_column(Vector())
    content_hash: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    #: the column `metadata` (the name is taken by SQLAlchemy's declarative base)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
    embedded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Embedding({self.content_type!r}, {self.source_id!r}, {self.model!r}, chunk {self.chunk_index})"


# -- loading the rows behind hits ----------------------------------------------------------------

#: a mapped class (keyed by its single-column primary key) or one of its columns, e.g. Note.slug
Target = type | InstrumentedAttribute[Any]


def load_hits(session: Session, hits: Iterable[H], models: Mapping[str, Target]) -> list[tuple[H, Any]]:
    """(hit, object) for each hit whose row still exists, in the hits' order; one query per
    content type. `models` maps each content type of the hits to its mapped class, or to the
    column its registration keys on (`key_column`) when that is not the primary key."""
    hits = list(hits)
    found: dict[tuple[str, Any], Any] = {}
    for content_type, (statement, key_of) in _statements(hits, models).items():
        for obj in session.scalars(statement):
            found[(content_type, key_of(obj))] = obj
    return _in_order(hits, models, found)


async def aload_hits(session: AsyncSession, hits: Iterable[H], models: Mapping[str, Target]) -> list[tuple[H, Any]]:
    """load_hits for an AsyncSession."""
    hits = list(hits)
    found: dict[tuple[str, Any], Any] = {}
    for content_type, (statement, key_of) in _statements(hits, models).items():
        for obj in await session.scalars(statement):
            found[(content_type, key_of(obj))] = obj
    return _in_order(hits, models, found)


def _statements(
    hits: Sequence[HitLike], models: Mapping[str, Target]
) -> dict[str, tuple[Select[Any], Callable[[Any], Any]]]:
    ids: dict[str, list[str]] = defaultdict(list)
    for hit in hits:
        if hit.content_type not in models:
            raise InvalidInput(f"no mapped class for content type {hit.content_type!r}: add it to `models`")
        ids[hit.content_type].append(str(hit.source_id))
    statements: dict[str, tuple[Select[Any], Callable[[Any], Any]]] = {}
    for content_type, source_ids in ids.items():
        key = _Key.of(models[content_type])
        values = list(dict.fromkeys(key.convert(i) for i in source_ids))
        condition = key.column.in_(values) if key.exact else cast(key.column, Text).in_(values)
        statements[content_type] = (select(key.cls).where(condition), key.of_object)
    return statements


def _in_order(
    hits: Sequence[H], models: Mapping[str, Target], found: Mapping[tuple[str, Any], Any]
) -> list[tuple[H, Any]]:
    keys = {content_type: _Key.of(target) for content_type, target in models.items()}
    pairs = []
    for hit in hits:
        obj = found.get((hit.content_type, keys[hit.content_type].convert(str(hit.source_id))))
        if obj is not None:
            pairs.append((hit, obj))
    return pairs


@dataclass(frozen=True)
class _Key:
    """The column a content type's source_id (its key as text) names a row by."""

    cls: Any
    column: InstrumentedAttribute[Any]
    #: source_id -> the column's Python type, so the query compares values and can use the index
    convert: Callable[[str], Any]
    #: False: the column's type has no simple Python twin; compared as text instead
    exact: bool

    @classmethod
    def of(cls, target: Target) -> _Key:
        if isinstance(target, InstrumentedAttribute):
            mapped, column = target.class_, target
        else:
            mapper: Mapper[Any] = inspect(target)
            if len(mapper.primary_key) != 1:
                raise InvalidInput(
                    f"{target.__name__} has a composite primary key: pass its key column (e.g. {target.__name__}.slug)"
                )
            mapped, column = target, getattr(target, mapper.get_property_by_column(mapper.primary_key[0]).key)
        try:
            python_type = column.type.python_type
        except NotImplementedError:
            python_type = None
        if python_type in (int, str, uuid.UUID):
            return cls(mapped, column, python_type, True)
        return cls(mapped, column, str, False)

    def of_object(self, obj: Any) -> Any:
        return self.convert(str(getattr(obj, self.column.key)))


# -- Alembic autogenerate ------------------------------------------------------------------------


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's include_object hook: False for everything in the `embedq` schema (its tables,
    their indexes and constraints, its version table), which `embedq migrate` owns."""
    return _schema_of(obj) != SCHEMA


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """Alembic's include_name hook: do not even reflect the `embedq` schema (with include_schemas=True)."""
    if type_ == "schema":
        return name != SCHEMA
    return parent_names.get("schema_name") != SCHEMA


def _schema_of(obj: Any) -> str | None:
    table = getattr(obj, "table", None)  # columns, indexes, constraints
    if table is not None and hasattr(table, "schema"):
        return table.schema
    return getattr(obj, "schema", None)


__all__ = ["SCHEMA", "Base", "Embedding", "HitLike", "aload_hits", "include_name", "include_object", "load_hits"]
