"""Forward loops and trusted peers: ``huntgroup check`` refuses what would hang or leak."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from huntgroup.config.loader import load_config_text
from huntgroup.config.models import Config, LimitsConfig, ServerConfig
from huntgroup.errors import ConfigError


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), "cfg.yaml", Path("/nonexistent"))
    return [str(p) for p in info.value.problems]


def load(text: str) -> Config:
    return load_config_text(textwrap.dedent(text), "cfg.yaml", Path("/nonexistent"))


# ------------------------------------------------------------------ forward loops


def test_two_lines_forwarding_to_each_other_are_a_loop() -> None:
    assert problems(
        """\
        lines:
          - number: "0102"
            password: a
            forward_no_answer: "0103"
          - number: "0103"
            password: b
            forward_no_answer: "0102"
        """
    ) == ["cfg.yaml:4:24: lines.0.forward_no_answer: forward loop: 0102 -> 0103 -> 0102"]


def test_a_group_overflowing_to_its_own_pilot_is_a_loop() -> None:
    assert problems(
        """\
        groups:
          - name: Support
            pilot: "0200"
            queue:
              overflow_to: "0200"
        """
    ) == ["cfg.yaml:5:20: groups.0.queue.overflow_to: forward loop: 0200 -> 0200"]


def test_a_line_forwarding_to_itself_is_a_loop() -> None:
    assert problems(
        """\
        lines:
          - number: "0102"
            password: a
            forward_busy: "0102"
        """
    ) == ["cfg.yaml:4:19: lines.0.forward_busy: forward loop: 0102 -> 0102"]


def test_a_three_cycle_through_a_group_overflow_and_a_no_answer_forward() -> None:
    # 0104 busy -> group b (0300) no answer -> group c (0400) queue full -> 0104
    assert problems(
        """\
        lines:
          - number: "0104"
            password: x
            forward_busy: "0300"
        groups:
          - name: b
            pilot: "0300"
            no_answer:
              forward_to: "0400"
          - name: c
            pilot: "0400"
            queue:
              overflow_to: "0104"
        """
    ) == ["cfg.yaml:4:19: lines.0.forward_busy: forward loop: 0104 -> 0300 -> 0400 -> 0104"]


def test_every_loop_of_a_file_is_reported_once_in_file_order() -> None:
    found = problems(
        """\
        lines:
          - number: "0102"
            password: a
            forward_busy: "0103"
            forward_no_answer: "0103"
          - number: "0103"
            password: b
            forward_no_answer: "0102"
        groups:
          - name: a
            pilot: "0200"
            no_answer:
              forward_to: "0200"
        """
    )
    assert found == [
        "cfg.yaml:4:19: lines.0.forward_busy: forward loop: 0102 -> 0103 -> 0102",
        "cfg.yaml:13:19: groups.0.no_answer.forward_to: forward loop: 0200 -> 0200",
    ]


def test_a_loop_is_found_even_when_another_key_is_invalid() -> None:
    found = problems(
        """\
        lines:
          - number: "0102"
            password: a
            no_answer_timeout: -1
            forward_no_answer: "0102"
        """
    )
    assert "cfg.yaml:5:24: lines.0.forward_no_answer: forward loop: 0102 -> 0102" in found
    assert len(found) == 2


def test_chains_and_targets_outside_the_server_are_no_loop() -> None:
    cfg = load(
        """\
        lines:
          - number: "0101"
            password: a
            forward_no_answer: "0102"
          - number: "0102"
            password: a
            forward_no_answer: "0103"
            forward_busy: "0200"
          - number: "0103"
            password: a
            forward_no_answer: "sip:0101@elsewhere.example.net"
            forward_busy: "0612345678"
        groups:
          - name: a
            pilot: "0200"
            queue:
              overflow_to: "0103"
            no_answer:
              forward_to: "0612345678"
        """
    )
    assert cfg.line("0101") is not None


def test_a_long_chain_is_checked_without_recursion() -> None:
    count = 3000  # deeper than Python's default recursion limit
    lines = "".join(
        f'  - number: "{10000 + i}"\n    password: a\n    forward_busy: "{10001 + i}"\n'
        for i in range(count)
    )
    cfg = load(f"lines:\n{lines}")
    assert len(cfg.lines) == count
    looped = lines + f'  - number: "{10000 + count}"\n    password: a\n    forward_busy: "10000"\n'
    found = problems(f"lines:\n{looped}")
    assert len(found) == 1 and "forward loop: 10000 -> 10001 -> 10002" in found[0]


# ------------------------------------------------------------------ settings


def test_trusted_peers_accept_addresses_and_networks_of_both_families() -> None:
    cfg = load(
        """\
        server:
          trusted_peers: ["192.0.2.10", "198.51.100.0/24", "2001:db8::/32", "::1"]
        """
    )
    assert cfg.server.trusted_peers == ("192.0.2.10", "198.51.100.0/24", "2001:db8::/32", "::1")
    assert ServerConfig().trusted_peers == ()


@pytest.mark.parametrize("value", ["sbc.example.net", "192.0.2.300", "10.0.0.1/8", "1.2.3.4/33"])
def test_trusted_peers_refuse_what_is_not_an_address(value: str) -> None:
    found = problems(f'server:\n  trusted_peers: ["{value}"]\n')
    assert len(found) == 1
    assert found[0].startswith("cfg.yaml:2:19: server.trusted_peers.0: ")
    assert "is not an IP address or a CIDR network" in found[0]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0.0.0.0/0", "is every address"),
        ("::/0", "is every address"),
        ("::ffff:0:0/96", "is every address"),  # 0.0.0.0/0, written as IPv6
        ("0.0.0.0/1", "is broader than /8"),
        ("8.0.0.0/7", "is broader than /8"),
        ("2000::/3", "is broader than /32"),
        ("2001:db8::/31", "is broader than /32"),
        ("0.0.0.0", "is the unspecified address"),
        ("::", "is the unspecified address"),
        ("::ffff:192.0.2.10", "Write 192.0.2.10"),
        ("::ffff:198.51.100.0/120", "Write 198.51.100.0/24"),
    ],
)
def test_trusted_peers_refuse_catch_alls_and_networks_too_broad(value: str, reason: str) -> None:
    found = problems(f'server:\n  trusted_peers: ["192.0.2.10", "{value}"]\n')
    assert len(found) == 1
    assert found[0].startswith(f"cfg.yaml:2:33: server.trusted_peers.1: {value!r} ")
    assert reason in found[0]


def test_trusted_peers_accept_the_broadest_networks_allowed() -> None:
    cfg = load('server:\n  trusted_peers: ["10.0.0.0/8", "2001:db8::/32", "[2001:db8::1]"]\n')
    assert cfg.server.trusted_peers == ("10.0.0.0/8", "2001:db8::/32", "[2001:db8::1]")


def test_max_internal_forwards_defaults_to_five_and_is_bounded() -> None:
    assert LimitsConfig().max_internal_forwards == 5
    assert "max_internal_forwards" in LimitsConfig.model_fields
    found = problems("server:\n  limits:\n    max_internal_forwards: -1\n")
    assert found == [
        "cfg.yaml:3:28: server.limits.max_internal_forwards: must be at least 0, got -1"
    ]
