"""App data in one SQLite file under the user data dir."""

from app.store.database import Database

__all__ = ["Database"]
