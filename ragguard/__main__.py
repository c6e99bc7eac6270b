"""``python -m ragguard``: the same as the ``ragguard`` command."""

from ragguard._cli import main

raise SystemExit(main())
