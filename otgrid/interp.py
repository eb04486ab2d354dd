"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.grid.interp`.

``import otgrid.interp`` returns :mod:`otgrid.grid.interp` itself (the same object, every name in
it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.grid import interp as _module

sys.modules[__name__] = _module
