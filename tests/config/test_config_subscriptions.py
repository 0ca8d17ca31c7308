"""server.subscriptions: the dialog event package's settings and their checks."""

from __future__ import annotations

from pathlib import Path

from huntgroup.config.loader import load_config_text
from tests.config.test_config_errors import BASE, problems


def test_defaults() -> None:
    subs = load_config_text(BASE, "cfg.yaml", Path("/nonexistent")).server.subscriptions
    assert subs.enabled and subs.watch_phones == "auto"
    assert (subs.min_expires, subs.default_expires, subs.max_expires) == (60, 600, 3600)
    assert (subs.max_subscriptions, subs.max_per_line, subs.show_remote) == (10000, 100, "lines")


def test_expires_out_of_order_is_refused() -> None:
    text = "server:\n  subscriptions:\n    min_expires: 900\n    default_expires: 600\n" + BASE
    assert problems(text) == [
        "cfg.yaml:3:5: server.subscriptions: expires must satisfy "
        "min_expires <= default_expires <= max_expires"
    ]


def test_show_remote_is_one_of_three() -> None:
    text = "server:\n  subscriptions:\n    show_remote: everyone\n" + BASE
    (problem,) = problems(text)
    assert "server.subscriptions.show_remote" in problem


def test_watch_phones_is_auto_true_or_false() -> None:
    for written, taken in (("auto", "auto"), ("true", True), ("false", False)):
        text = f"server:\n  subscriptions:\n    watch_phones: {written}\n" + BASE
        subs = load_config_text(text, "cfg.yaml", Path("/nonexistent")).server.subscriptions
        assert subs.watch_phones == taken


def test_watch_phones_refuses_other_values() -> None:
    for written in ("sometimes", "3", "[dialog]"):
        text = f"server:\n  subscriptions:\n    watch_phones: {written}\n" + BASE
        found = problems(text)
        assert found, written
        assert all("server.subscriptions.watch_phones" in p for p in found), found
