import os
import sys

# `python -m nnprobe` put the working directory first on sys.path (a checkout's numpy.py would
# shadow numpy): drop it, as pip's __main__ does. What Python imported before this line came from
# there already; `python -P -m nnprobe` and the `nnprobe` command never look there at all.
if not sys.flags.safe_path and sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from nnprobe.cli import main  # noqa: E402

raise SystemExit(main())
