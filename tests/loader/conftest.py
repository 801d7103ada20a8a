"""The loader's ORM tests run on the db tests' seeded SQLite and PostgreSQL engines."""

from ..db.conftest import async_db, sync_db  # noqa: F401 - the fixtures, reused as they are
