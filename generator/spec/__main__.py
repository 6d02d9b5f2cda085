"""``python -m microforge.spec [PATH]``: rewrite the shipped JSON Schema of the spec format."""

from .schema import main

raise SystemExit(main())
