"""Redis deployments for the tests: TLS certificates, Sentinel, the Cluster hash slot.

Everything runs as real processes on 127.0.0.1 and free ports, in the test's
temporary directory; a missing ``openssl``, ``redis-server`` or
``redis-sentinel`` makes the test FAIL (RuntimeError), never skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from tests.support.ports import free_port
from tests.support.state_harness import RedisServer
from tests.support.waiting import wait_until


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA and one leaf certificate for 127.0.0.1 (server and client), made with openssl."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is not installed (Debian package openssl)")
    d = directory
    (d / "leaf.ext").write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=huntgroup test CA")  # fmt: skip
    run("req", *ec, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "leaf.ext")  # fmt: skip
    return {"ca": d / "ca.pem", "certificate": d / "cert.pem", "private_key": d / "key.pem"}


class Sentinel:
    """One ``redis-sentinel`` process watching ``master`` (its config file is its own)."""

    def __init__(
        self, workdir: Path, master_port: int, *, password: str, own_password: str, name: str
    ) -> None:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            raise RuntimeError(
                "redis-sentinel is not installed: run scripts/setup.sh (it installs the "
                "Debian package redis-sentinel); the Sentinel failover test needs it"
            )
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = workdir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {name} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {name} 500\n"
            f"sentinel failover-timeout {name} 3000\n"
            f"sentinel auth-pass {name} {password}\n"
            f"requirepass {own_password}\nsentinel sentinel-pass {own_password}\n"
        )
        self.proc = subprocess.Popen(
            [binary, str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.client = redis.Redis(
            host="127.0.0.1", port=self.port, password=own_password, decode_responses=True
        )

    def stop(self) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait()


class SentinelDeployment:
    """A master, one replica and three sentinels; Redis and the sentinels each with a password."""

    name = "hgmaster"

    def __init__(self, workdir: Path, password: str, sentinel_password: str) -> None:
        self.workdir = workdir
        self.password = password
        self.sentinel_password = sentinel_password
        auth = ("--requirepass", password, "--masterauth", password)
        self.master = RedisServer(self._dir("master"), extra=auth)
        self.replica = RedisServer(self._dir("replica"), extra=auth)
        self.replica.extra = (*auth, "--replicaof", "127.0.0.1", str(self.master.port))
        self.sentinels: list[Sentinel] = []

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}/0"

    def client(self, server: RedisServer) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=server.port, password=self.password, decode_responses=True
        )

    def start(self) -> None:
        self.master.start()
        self.replica.start()
        replica = self.client(self.replica)
        wait_until(
            lambda: replica.info("replication").get("master_link_status") == "up",
            timeout=30,
            message="the replica never synchronised with the master",
            error=RuntimeError,
        )
        replica.close()
        self.sentinels = [
            Sentinel(
                self._dir(f"sentinel{i}"),
                self.master.port,
                password=self.password,
                own_password=self.sentinel_password,
                name=self.name,
            )
            for i in range(3)
        ]

        def ready() -> bool:  # each sentinel knows the replica and the two other sentinels
            try:
                return all(
                    len(s.client.sentinel_slaves(self.name)) == 1
                    and len(s.client.sentinel_sentinels(self.name)) == 2
                    for s in self.sentinels
                )
            except redis.ConnectionError:
                return False

        wait_until(
            ready, timeout=60, interval=0.1, message="sentinels not ready", error=RuntimeError
        )

    def master_port(self) -> int:
        """The port of the master the sentinels name now."""
        _, port = self.sentinels[0].client.sentinel_get_master_addr_by_name(self.name)
        return int(port)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.master.stop()


def _crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def cluster_slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (CRC16-XMODEM of its hash tag, modulo 16384)."""
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return _crc16_xmodem(raw) % 16384
