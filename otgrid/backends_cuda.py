"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.critic.backend_cuda`.

``import otgrid.backends_cuda`` returns :mod:`otgrid.critic.backend_cuda` itself (the same object,
every name in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.critic import backend_cuda as _module

sys.modules[__name__] = _module
