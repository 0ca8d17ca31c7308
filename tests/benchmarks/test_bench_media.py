"""bench_media.py's receive-path modes (RPS on the namespace's lo, or plain loopback) and
the rows that report them; the host's lo is never written to."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_media
from bench_media import (
    LO_RPS,
    Level,
    music_table,
    net_rx_softirqs,
    own_sysfs,
    rps_mask,
    rx_mode_value,
    set_rx_mode,
)

SOFTIRQS = """                    CPU0       CPU1
          HI:          1          0
       TIMER:     123456     654321
      NET_TX:         10         20
      NET_RX:     101976         75
       BLOCK:          0          0
"""


def test_rps_mode_steers_the_receive_path_to_the_receivers_cpu_only() -> None:
    assert rps_mask({1}) == "2"
    assert rps_mask({0, 1}) == "3"
    assert rps_mask(set()) == "0"
    assert rx_mode_value("rps") == rps_mask({bench_media.PEER_CPU})
    assert rx_mode_value("loopback") == "0"
    assert rx_mode_value("discard") == "0"  # nothing reaches lo: no RPS
    with pytest.raises(ValueError):
        rx_mode_value("veth")


def test_set_rx_mode_writes_the_mask_and_checks_it_took(tmp_path: Path) -> None:
    rps_cpus = tmp_path / "rps_cpus"
    rps_cpus.write_text("0\n")
    set_rx_mode("rps", rps_cpus)
    assert rps_cpus.read_text() == "2\n"
    set_rx_mode("loopback", rps_cpus)
    assert rps_cpus.read_text() == "0\n"


def test_the_hosts_lo_is_never_written_outside_our_own_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HG_BENCH_SYSFS", raising=False)
    assert not own_sysfs()
    with pytest.raises(RuntimeError):
        set_rx_mode("rps")  # refused before any write
    set_rx_mode("loopback")  # the default already: nothing written, nothing raised
    # the flag alone is not enough: the sysfs must show one device, the namespace's lo
    monkeypatch.setenv("HG_BENCH_SYSFS", "1")
    monkeypatch.setattr(os, "listdir", lambda _path: ["eth0", "lo"])
    assert not own_sysfs()
    with pytest.raises(RuntimeError):
        set_rx_mode("rps", LO_RPS)
    monkeypatch.setattr(os, "listdir", lambda _path: ["lo"])
    assert own_sysfs()
    # the discard mode's own devices, once made there, keep it ours; anything else not
    ours = ["lo", *bench_media.DISCARD_DEVICES, *bench_media.own_peers()]
    monkeypatch.setattr(os, "listdir", lambda _path: ours)
    assert own_sysfs()
    monkeypatch.setattr(os, "listdir", lambda _path: [*ours, "eth0"])
    assert not own_sysfs()
    with pytest.raises(RuntimeError):
        bench_media.setup_discard()  # refused before any device is made


def test_net_rx_softirqs_are_read_per_cpu() -> None:
    assert net_rx_softirqs(SOFTIRQS) == [101976, 75]
    assert net_rx_softirqs("nothing here\n") == []
    assert len(net_rx_softirqs()) >= 1  # this machine's


def _row(cpu: float, packets: float, net_rx: tuple[float, float]) -> dict[str, float]:
    return {
        "t0": 0.0,
        "t1": 2.0,
        "cpu": cpu,
        "p50": 0.3,
        "p99": 1.0,
        "lost": 0,
        "packets": packets,
        "expected": packets,
        "rx_cpu": 0.4,
        "net_rx_sender": net_rx[0],
        "net_rx_peer": net_rx[1],
    }


def test_music_rows_name_the_mode_and_where_the_receive_path_ran() -> None:
    rps = Level(1000, [_row(0.5, 100_000, (99_000, 98_000))] * 3)
    plain = Level(1000, [_row(0.4, 100_000, (101_000, 10))] * 3)
    table = music_table([("engine", "rps", rps), ("engine", "loopback", plain)])
    lines = table.splitlines()
    assert "receive path" in lines[0] and "NET_RX per packet" in lines[0]
    assert lines[1].count("|") == lines[0].count("|")
    assert "| rps |" in lines[2] and "| 0.99 / 0.98 |" in lines[2]
    assert "| loopback |" in lines[3] and "| 1.01 / 0.00 |" in lines[3]
    assert "| 10.00 |" in lines[2] and "| 8.00 |" in lines[3]  # µs of CPU per packet


def test_the_designs_named_are_those_of_the_run() -> None:
    text = bench_media.designs_text(["engine", "floor"])
    assert bench_media.DESIGNS["engine"] in text and bench_media.DESIGNS["floor"] in text
    assert bench_media.DESIGNS["scheduler"] not in text


# /proc/net/dev's shape (its two heading lines, then one line per device)
PROC_NET_DEV = "\n".join(
    [
        "Inter-|   Receive                    |  Transmit",
        " face |bytes packets errs drop fifo frame compressed multicast|bytes packets ...",
        "    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0",
        "  hgm0: 0 0 0 0 0 0 0 0 0 0 0 99998 0 0 0 0",
        "  hgs0: 176 2 0 0 0 0 0 0 876000 6250 0 0 0 0 0 0",
    ]
)


def test_the_devices_count_what_they_sent_or_dropped() -> None:
    counts = bench_media.device_tx(PROC_NET_DEV)
    assert counts == {"lo": 10, "hgm0": 99_998, "hgs0": 6_250}
    assert len(bench_media.device_tx()) >= 1  # this namespace's: lo at least


def _ipv4_udp(payload: bytes, *, proto: int = 17, ihl: int = 5) -> bytes:
    header = bytes([0x40 | ihl, 0]) + (20 + 8 + len(payload)).to_bytes(2, "big")
    header += bytes(5) + bytes([proto]) + bytes(10) + bytes(4 * (ihl - 5))
    return header + bytes(8) + payload


def test_the_tap_reads_sequence_and_ssrc_of_rtp_in_ipv4_udp() -> None:
    rtp = bench_media.RtpPacket(0, 4242, 160, 0xCAFE, b"\xff" * 160).to_bytes()
    assert bench_media.rtp_of_ip(_ipv4_udp(rtp)) == (4242, 0xCAFE)
    assert bench_media.rtp_of_ip(_ipv4_udp(rtp, ihl=6)) == (4242, 0xCAFE)  # IP options
    assert bench_media.rtp_of_ip(_ipv4_udp(rtp, proto=6)) is None  # not UDP
    assert bench_media.rtp_of_ip(_ipv4_udp(rtp[:11])) is None  # too short for RTP
    assert bench_media.rtp_of_ip(b"\x60" + bytes(60)) is None  # IPv6


def test_a_discard_level_passes_only_when_the_tap_saw_its_share() -> None:
    result = {"t0": 0.0, "t1": 2.0, "device_sent": 100_000.0}
    counts = bench_media.discard_counts(result, {"packets": 6_300.0}, 1000)
    assert counts == {"packets": 100_000.0, "sampled_packets": 6_300.0, "sampled_due": 6_300.0}
    row = {**_row(0.5, 100_000, (6_000, 0)), **counts}
    assert bench_media.music_ok(Level(1000, [row] * 3))
    missed = {**row, "sampled_packets": 6_000.0}  # the tap lost some: not a pass
    assert not bench_media.music_ok(Level(1000, [missed] * 3))
