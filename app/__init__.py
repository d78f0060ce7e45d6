"""ModelDeck's core: hub access, licenses, hardware fit, storage. Plain Python, never Qt."""

# The single source of the version: pyproject.toml reads it from here (setuptools "dynamic"),
# and reading it here costs nothing at startup (importlib.metadata costs ~20 ms).
__version__ = "0.1.0"
