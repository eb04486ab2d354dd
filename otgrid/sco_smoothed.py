"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.sco.smoothed`.

``import otgrid.sco_smoothed`` returns :mod:`otgrid.sco.smoothed` itself (the same object, every
name in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.sco import smoothed as _module

sys.modules[__name__] = _module
