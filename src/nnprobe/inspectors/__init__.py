"""Rule families, one module each; importing this package registers every rule and handler."""

from nnprobe.inspectors import inspection  # noqa: F401
