"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.auditing.plot`.

``import otgrid.audit_plot`` returns :mod:`otgrid.auditing.plot` itself (the same object, every
name in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.auditing import plot as _module

sys.modules[__name__] = _module
