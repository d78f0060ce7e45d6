"""ModelDeck's core: hub access, licenses, hardware fit, storage. Plain Python, never Qt."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modeldeck")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
