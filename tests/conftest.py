"""Make tests.helpers importable as `helpers` from every suite; one hypothesis profile for all.

Property tests check what a parser does with any input, never how fast: a 2-core CI machine running
daemons beside them must not turn a slow example into a failure (no deadline, no too-slow check).
"""

import os
import sys

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("hpcwatch", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hpcwatch")
