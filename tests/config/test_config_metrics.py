"""server.admin.metrics: the bound on per-member series and its checks."""

from __future__ import annotations

from pathlib import Path

from huntgroup.config.loader import load_config_text
from tests.config.test_config_errors import BASE, problems


def test_the_member_series_are_capped_at_2000_by_default() -> None:
    admin = load_config_text(BASE, "cfg.yaml", Path("/nonexistent")).server.admin
    assert admin.metrics.max_member_series == 2000


def test_the_cap_is_read_and_zero_allowed() -> None:
    for written in (0, 50):
        text = f"server:\n  admin:\n    metrics:\n      max_member_series: {written}\n" + BASE
        admin = load_config_text(text, "cfg.yaml", Path("/nonexistent")).server.admin
        assert admin.metrics.max_member_series == written


def test_a_negative_or_huge_cap_is_refused() -> None:
    for written in ("-1", "1000000", "many"):
        text = f"server:\n  admin:\n    metrics:\n      max_member_series: {written}\n" + BASE
        (problem,) = problems(text)
        assert problem.startswith("cfg.yaml:4:26: server.admin.metrics.max_member_series: ")
