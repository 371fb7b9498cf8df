"""``python -m minissd.classroom``: the classroom commands."""

from .cli import main

raise SystemExit(main())
