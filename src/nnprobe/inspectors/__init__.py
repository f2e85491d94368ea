"""Rule families, one module each; importing this package registers every rule and handler."""

from nnprobe.core.engine import register_handler, register_name_handler
from nnprobe.inspectors import (
    activations,  # noqa: F401
    architecture,  # noqa: F401
    data,  # noqa: F401
    gradients,  # noqa: F401
    initialization,  # noqa: F401
    inspection,  # noqa: F401
    loss,  # noqa: F401
    optimizer,  # noqa: F401
    regularization,  # noqa: F401
    serialization,  # noqa: F401
    training_logs,  # noqa: F401
    training_loop,  # noqa: F401
    weights,  # noqa: F401
)
from nnprobe.inspectors.checkpoint import CHECKPOINT_SUFFIXES, check_checkpoint
from nnprobe.inspectors.script.handler import check_script
from nnprobe.inspectors.training_logs import LOG_NAMES, LOG_SUFFIXES, check_log

register_handler([".py"], check_script)
register_handler(CHECKPOINT_SUFFIXES, check_checkpoint)
register_handler(LOG_SUFFIXES, check_log)
register_name_handler(LOG_NAMES, check_log)
