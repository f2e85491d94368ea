"""The pure core: findings, rules, registry, config, suppressions and the engine.

Nothing here imports torch, pygls or lsprotocol.
"""
