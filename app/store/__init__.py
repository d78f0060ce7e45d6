"""App data in one SQLite file under the user data dir."""

from app.store.database import SCHEMA_VERSION, Database, DatabaseRecovery
from app.store.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseError,
    DatabaseTooNewError,
    DatabaseUnusableError,
)

__all__ = [
    "SCHEMA_VERSION",
    "Database",
    "DatabaseBusyError",
    "DatabaseCorruptError",
    "DatabaseError",
    "DatabaseRecovery",
    "DatabaseTooNewError",
    "DatabaseUnusableError",
]
