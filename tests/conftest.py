"""Suite-wide settings: in CI, hypothesis runs derandomized (reproducible examples);
the live tests (marked ``integration``) run one after another on one pytest-xdist
worker, the others on the other workers."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


LIVE_GROUP = "live"
"""The xdist group of every test marked ``integration``: they start real servers and
peers, time calls and sometimes load the machine on purpose, so two of them never
run at once (``--dist loadgroup`` in scripts/test.sh puts a group on one worker)."""


def pytest_configure(config: pytest.Config) -> None:
    # known with --strict-markers even where pytest-xdist is not installed
    config.addinivalue_line("markers", "xdist_group(name): tests run on one xdist worker")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") is not None:
            item.add_marker(pytest.mark.xdist_group(LIVE_GROUP))
