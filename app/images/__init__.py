"""Images: parameters, the image engine, PNG metadata and the gallery."""
