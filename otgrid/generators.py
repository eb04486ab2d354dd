"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.sco.generators`.

``import otgrid.generators`` returns :mod:`otgrid.sco.generators` itself (the same object, every
name in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.sco import generators as _module

sys.modules[__name__] = _module
