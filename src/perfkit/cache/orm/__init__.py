"""Cache invalidation driven by SQLAlchemy writes (`pip install 'perfkit[sqlalchemy]'`).

Cached values declare what they read (`depends_on=[Ticket]`, `[Ticket.organization_id == "{org_id}"]`,
or inferred by `cache.query(session, select(...))`); `CacheInvalidator` watches sessions and engines
and, after each commit, invalidates exactly the dependents of the rows that changed;
`invalidator.on_change(observer)` hears which rows those were (`RowsChanged`).
"""

from perfkit.cache.changes import RowsChanged
from perfkit.cache.orm.deps import column_tag, table_tag, unknown_rows_tag
from perfkit.cache.orm.invalidator import CacheInvalidator

__all__ = ["CacheInvalidator", "RowsChanged", "column_tag", "table_tag", "unknown_rows_tag"]
