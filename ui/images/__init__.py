"""The Images page: local diffusion models, a live preview, and a gallery.

`ImagesPage` (in `ui.images.page`) is what the main window shows; the other modules are its
parts: `model_picker` (which model, and its license), `form` (the generation settings),
`preview` (progress and the live preview), `gallery_model` (a paged list model with lazily
decoded thumbnails), `gallery_view` (the grid and its menu), `viewer` (one image, large, with
its parameters) and `pictures` (decoding images on workers).
"""
