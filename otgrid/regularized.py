"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.pointcloud`.

``import otgrid.regularized`` returns :mod:`otgrid.pointcloud` itself (the same object, every name
in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid import pointcloud as _module

sys.modules[__name__] = _module
