"""Suite-wide settings: in CI, hypothesis runs derandomized (reproducible examples)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
