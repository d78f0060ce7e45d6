"""Civitai beside Hugging Face: a small typed client of its REST API and a `HubProvider`.

Modules, each one idea:
- `models`: what Civitai says (models, versions, files, permissions), as frozen dataclasses.
- `parse`: Civitai's untrusted JSON read into those, bounded.
- `client`: `CivitaiClient`, the HTTP calls and their errors.
- `licenses`: the creator's permission flags as a license id `app.licenses` explains.
- `provider`: `CivitaiHub`, the `HubProvider`.
- `credentials`: the Civitai API key (keyring, or `CIVITAI_TOKEN`).
- `settings`: Civitai's own settings (NSFW shown, folders per kind).
"""
