"""ModelScope (modelscope.cn): a second hub beside Hugging Face.

- `api`: a small typed client of its HTTP API (search, details, file listings, downloads).
- `provider`: `ModelScopeHub`, the `HubProvider` over that client.
- `licenses`: its license names mapped to the ids `app.licenses` describes.
- `layout`: where ModelScope's own tools keep models on disk (current and older layouts).
"""
