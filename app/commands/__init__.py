"""Headless command groups: each module offers `register(subparsers)` and `run(core, args, out)`.

`app.cli` builds the parser and dispatches to them.
"""
