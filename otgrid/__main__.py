"""``python -m otgrid``: the command line (see :mod:`otgrid.cli`)."""

from __future__ import annotations

from otgrid.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
