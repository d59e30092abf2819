"""An app that fails at start."""

raise SystemExit("broken_app: cannot read my configuration")
