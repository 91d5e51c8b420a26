"""``python -m taskq``: the same as the ``taskq`` command."""

from .cli.main import main

raise SystemExit(main())
