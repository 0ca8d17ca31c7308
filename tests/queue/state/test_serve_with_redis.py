"""`huntgroup serve` with `server.state: redis://...`: wired to Redis, or refuses to start."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import redis
import yaml

from tests.support.ports import free_port
from tests.support.sip_harness import answers_options
from tests.support.state_harness import RedisServer
from tests.support.waiting import WaitTimeout, wait_until


def write_config(path: Path, state: str, port: int) -> None:
    config = {
        "server": {
            "listen": [f"udp:127.0.0.1:{port}"],
            "media": {"address": "127.0.0.1", "rtp_ports": "32000-32099"},
            "state": state,
            "shutdown_grace": 1,
        },
        "lines": [{"number": "0102030405", "password": "pw"}],
        "groups": [
            {
                "name": "Support",
                "pilot": "0140000000",
                "members": [{"line": "0102030405", "position": 1}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))


# Generous deadlines: on a loaded 2-core machine the server alone can take
# several seconds to start (imports, then the connection to Redis).
DEADLINE = 60.0


def test_serve_shares_its_state_in_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    port = free_port()
    cfg = tmp_path / "cfg.yaml"
    write_config(cfg, redis_server.url, port)
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "huntgroup", "serve", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert answers_options(proc, port, deadline=DEADLINE), (tmp_path / "serve.log").read_text()
        client = redis.Redis(host="127.0.0.1", port=redis_server.port)
        shared = b""

        def member_shared() -> bool:  # the membership written at start reaches Redis
            nonlocal shared
            # Other keys (the node's liveness, the marker) may land first: wait
            # for the hash that names the member, not for any key at all.
            keys = client.keys("{huntgroup}:*")
            shared = b" ".join(
                k + b" " + b" ".join(client.hkeys(k)) for k in keys if client.type(k) == b"hash"
            )
            return b"0102030405" in shared

        with contextlib.suppress(WaitTimeout):
            wait_until(member_shared, timeout=DEADLINE, interval=0.1)
        assert b"0102030405" in shared, f"membership not in Redis: {client.keys('{huntgroup}:*')}"
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        log.close()
    assert "shared state: redis://127.0.0.1" in (tmp_path / "serve.log").read_text()


def test_serve_refuses_to_start_without_its_redis(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    write_config(cfg, f"redis://127.0.0.1:{free_port()}/0", free_port())
    run = subprocess.run(
        [sys.executable, "-m", "huntgroup", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "huntgroup serve:" in run.stderr and "redis" in run.stderr.lower()
