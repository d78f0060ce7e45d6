"""ModelDeck's PySide6 front end: windows, pages, item models and the composition root."""
