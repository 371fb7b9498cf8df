"""``python -m minissd`` is the same as the ``minissd`` command."""

from .cli import main

raise SystemExit(main())
