"""Import path of otgrid 0.1.0, kept working: this module *is* :mod:`otgrid.auditing`.

``import otgrid.critic_audit`` returns :mod:`otgrid.auditing` itself (the same object, every name
in it); new code imports from there. See CHANGELOG.md.
"""

import sys

from otgrid import auditing as _module

sys.modules[__name__] = _module
