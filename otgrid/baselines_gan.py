"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.auditing.gan`.

``import otgrid.baselines_gan`` returns :mod:`otgrid.auditing.gan` itself (the same object, every
name in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid.auditing import gan as _module

sys.modules[__name__] = _module
