"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.critic.backends`.

``import otgrid.backends`` returns :mod:`otgrid.critic.backends` itself (the same object, every
name in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.critic import backends as _module

sys.modules[__name__] = _module
