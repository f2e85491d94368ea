from nnprobe.cli import main

raise SystemExit(main())
