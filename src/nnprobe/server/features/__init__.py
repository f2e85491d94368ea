"""LSP features, one module per concern; each has `register(server)` wiring its handlers."""
