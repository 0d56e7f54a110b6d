"""Make tests.helpers importable as `helpers` from every suite."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
