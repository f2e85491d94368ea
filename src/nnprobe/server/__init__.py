"""The language server (`nnprobe serve`): a thin pygls adapter over the pure core.

Imported only by `nnprobe serve`, so the CLI never pays for pygls; needs the `lsp` extra.
See app.py for the API other server components use, and docs/lsp.md for the protocol surface.
"""
