"""Engines: child processes that run models (llama.cpp, diffusers), supervised by the app.

`protocol` is the message format on the pipe and the child's request loop; `supervisor`
starts a child, routes its events to request handles and turns its death into an outcome.
"""
