"""Where the files embedq reads at run time live, in a checkout and in an installed wheel alike.

`sql/` is the package `embedq.sql` (read through importlib.resources). `alembic/` sits beside it:
at the top of a checkout (an editable install maps the folders into `embedq`), inside the package
in a wheel. It is not a package itself: a checkout's top-level `alembic/__init__.py` would shadow
the alembic library for anything run from the checkout.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path


def sql_file(relative: str) -> Traversable:
    """A file under sql/, e.g. "functions/jobs.sql"."""
    return files("embedq.sql").joinpath(*relative.split("/"))


def read_sql(relative: str) -> str:
    return sql_file(relative).read_text(encoding="utf-8")


@functools.cache
def alembic_dir() -> Path:
    return Path(str(files("embedq.sql"))).parent / "alembic"
