"""The ``otgrid`` command line (also ``python -m otgrid``).

:func:`main` (:mod:`~otgrid.cli.main`) builds the parser from one module per command —
:mod:`~otgrid.cli.critic`, :mod:`~otgrid.cli.sco`, :mod:`~otgrid.cli.audit`,
:mod:`~otgrid.cli.info`, each adding its sub-parser and running it — and turns bad input into
a one-line message with exit status 2. :mod:`~otgrid.cli.common` holds what the commands
share: the usage error, distributions parsed with :mod:`otgrid.grid.spec`, default grids, the
checks of output paths. The heavy imports (Numba, the solvers, matplotlib) happen inside the
commands, so that ``otgrid --help`` answers at once.
"""

from otgrid.cli.main import main

__all__ = ["main"]
