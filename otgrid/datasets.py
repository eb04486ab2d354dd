"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.grid.datasets`.

``import otgrid.datasets`` returns :mod:`otgrid.grid.datasets` itself (the same object, every name
in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.grid import datasets as _module

sys.modules[__name__] = _module
