"""A Redis primary, its replica and three Sentinels, as processes of their own, for tests that
kill the primary. Sentinels come from Debian's ``redis-sentinel`` where it is installed, else
``redis-server --sentinel`` (the same program)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis as redis_py

from tests.support import RedisServer, free_port, wait_until
from twostep.children import redis_server_argv, stop

MASTER = "twostep-test"


class SentinelGroup(RedisServer):
    """Stands where a cluster's one Redis would: ``url`` names the sentinels."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.embedded = False
        self.directory = directory
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.url = ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinel_ports) + "/0"
        self.group: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> SentinelGroup:
        self._redis("primary", self.primary_port)
        self._redis(
            "replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port)
        )
        wait_until(self._replica_synced, timeout=20, what="the replica to sync")
        for number, port in enumerate(self.sentinel_ports, start=1):
            config = self.directory / f"sentinel-{number}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            binary = shutil.which("redis-sentinel")
            argv = [binary, str(config)] if binary else ["redis-server", str(config), "--sentinel"]
            self._start(f"sentinel-{number}", argv)
        wait_until(self._sentinels_agree, timeout=20, what="the sentinels to see the replica")
        return self

    def primary_now(self) -> int:
        with redis_py.Redis(port=self.sentinel_ports[0], socket_timeout=2) as sentinel:
            _host, port = sentinel.sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def kill_primary(self) -> float:
        """SIGKILL the primary; returns the monotonic time it died."""
        process = self.group.pop("primary")
        process.kill()
        process.wait()
        return time.monotonic()

    def wait_for_failover(self, timeout: float = 30) -> float:
        wait_until(
            lambda: self.primary_now() == self.replica_port,
            timeout=timeout,
            what="a sentinel to promote the replica",
        )
        return time.monotonic()

    def stop(self) -> None:
        for process in reversed(list(self.group.values())):
            stop(process, 10)

    def restart(self) -> None:
        raise NotImplementedError("a sentinel group fails over; it is not restarted")

    def _redis(self, name: str, port: int, *extra: str) -> None:
        self._start(
            name,
            redis_server_argv(
                port, "--dir", str(self.directory), "--dbfilename", f"{name}.rdb", *extra
            ),
        )

    def _start(self, name: str, argv: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.group[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def _replica_synced(self) -> bool:
        try:
            with redis_py.Redis(port=self.replica_port, socket_timeout=1) as replica:
                info = replica.info("replication")
        except redis_py.RedisError:
            return False
        return bool(info.get("master_link_status") == "up")

    def _sentinels_agree(self) -> bool:
        try:
            for port in self.sentinel_ports:
                with redis_py.Redis(port=port, socket_timeout=1) as sentinel:
                    master = sentinel.sentinel_master(MASTER)
                    if (
                        int(master.get("num-slaves", 0)) < 1
                        or int(master.get("num-other-sentinels", 0)) < 2
                    ):
                        return False
        except redis_py.RedisError:
            return False
        return True
