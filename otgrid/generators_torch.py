"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.sco.generators_torch`.

``import otgrid.generators_torch`` returns :mod:`otgrid.sco.generators_torch` itself (the same
object, every name in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.sco import generators_torch as _module

sys.modules[__name__] = _module
