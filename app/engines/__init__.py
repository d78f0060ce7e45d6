"""Engines, the generic part: child processes that run models, supervised by the app.

`protocol` is the message format on the pipe and the child's request loop; `supervisor`
starts a child, routes its events to request handles and turns its death into an outcome;
`errors` is the one `EngineError` family. The workers live with what they run:
`app.llm.llama_worker`, `app.images.diffusers_worker`.
"""
