"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.grid.distributions`.

``import otgrid.distributions`` returns :mod:`otgrid.grid.distributions` itself (the same object,
every name in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.grid import distributions as _module

sys.modules[__name__] = _module
