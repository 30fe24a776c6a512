"""A real NATS JetStream cluster on loopback for tests: Debian's ``nats-server``, three nodes.

    with NatsCluster.start(tmp_path) as cluster:
        nc = await nats.connect(cluster.urls)
        cluster.kill(1); cluster.restart(1)    # SIGKILL one node, then bring it back

Each node has its own JetStream store under the given directory, client and route ports
chosen free on 127.0.0.1 and a monitoring port read for the meta leader. ``nats-server`` is
found on PATH (or /usr/sbin), or installed with apt-get where root may; else
:class:`NatsUnavailable` says why (the fixture skips with it).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest
from apt_packages import apt_install

BINARY = "nats-server"
#: Bounds: apt-get's install, the cluster's start (a meta leader elected), a node's stop.
INSTALL_TIMEOUT_S = 600.0
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
CLUSTER_NAME = "kline_rs"


class NatsUnavailable(RuntimeError):
    """No nats-server here and none can be installed; the message says why."""


class NatsStartError(RuntimeError):
    """nats-server is installed but the cluster did not form: a failure, not a skip."""


def nats_server_path(*, install: bool = True) -> str:
    """The ``nats-server`` binary; installed with apt-get first when missing, ``install`` is
    set and we are root with apt. Raises :class:`NatsUnavailable` saying why not."""
    found = shutil.which(BINARY) or shutil.which(BINARY, path="/usr/sbin:/usr/bin")
    if found is not None:
        return found
    if not install:
        raise NatsUnavailable("nats-server is not installed (apt-get install nats-server)")
    why = apt_install([BINARY], INSTALL_TIMEOUT_S)
    if why is not None:
        raise NatsUnavailable(why)
    found = shutil.which(BINARY) or shutil.which(BINARY, path="/usr/sbin:/usr/bin")
    if found is None:
        raise NatsUnavailable("apt-get installed nats-server but it is not on PATH")
    return found


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (held open together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class NatsNode:
    """One server of the cluster: its ports, store and (while running) its process."""

    name: str
    port: int
    route_port: int
    http_port: int
    store: Path
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def jsz(self) -> dict[str, object] | None:
        """The node's ``/jsz`` monitoring answer (None while it does not answer)."""
        return self._monitor("jsz")

    def healthy(self) -> bool:
        """``/healthz`` says ok: JetStream on the node is current (its streams caught up)."""
        answer = self._monitor("healthz")
        return answer is not None and answer.get("status") == "ok"

    def clients(self) -> list[str]:
        """Names of the clients connected to the node now (``/connz``; [] if it does not
        answer)."""
        connz = self._monitor("connz")
        conns = connz.get("connections") if connz else None
        if not isinstance(conns, list):
            return []
        return [str(c.get("name", "")) for c in conns if isinstance(c, dict)]

    def _monitor(self, endpoint: str) -> dict[str, object] | None:
        url = f"http://127.0.0.1:{self.http_port}/{endpoint}"
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                answer: dict[str, object] = json.load(r)
                return answer
        except (OSError, urllib.error.URLError, ValueError):
            return None


class NatsCluster:
    """``size`` nats-server processes with JetStream, routed to each other on loopback."""

    def __init__(self, binary: str, root: Path, size: int = 3) -> None:
        self.binary = binary
        ports = _free_ports(3 * size)
        self.nodes: list[NatsNode] = []
        for i in range(size):
            home = root / f"n{i}"
            (home / "js").mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                NatsNode(
                    name=f"n{i}",
                    port=ports[3 * i],
                    route_port=ports[3 * i + 1],
                    http_port=ports[3 * i + 2],
                    store=home / "js",
                    config=home / "nats.conf",
                    log=home / "nats.log",
                )
            )
        routes = ", ".join(f"nats-route://127.0.0.1:{n.route_port}" for n in self.nodes)
        for n in self.nodes:
            n.config.write_text(
                f"server_name: {n.name}\n"
                f"listen: 127.0.0.1:{n.port}\n"
                f"http: 127.0.0.1:{n.http_port}\n"
                f'jetstream {{ store_dir: "{n.store}" }}\n'
                f"cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{n.route_port}\n"
                f"  routes: [{routes}]\n}}\n"
            )

    @classmethod
    def start(cls, root: Path, size: int = 3, *, binary: str | None = None) -> NatsCluster:
        """Starts every node and waits for a JetStream meta leader (START_TIMEOUT_S)."""
        cluster = cls(binary or nats_server_path(), root, size)
        try:
            for i in range(size):
                cluster._spawn(i)
            cluster.wait_ready()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url_list(self) -> str:
        """The servers as one comma-separated list (``--nats``)."""
        return ",".join(self.urls)

    def _spawn(self, i: int) -> None:
        n = self.nodes[i]
        with n.log.open("ab") as log:
            n.process = subprocess.Popen(
                [self.binary, "-c", str(n.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until every running node answers and names the same meta leader."""
        deadline = time.monotonic() + timeout
        while True:
            leaders = set()
            for n in self.nodes:
                if n.process is None:
                    continue
                if n.process.poll() is not None:
                    raise NatsStartError(
                        f"{n.name} exited ({n.process.returncode}): {self.tail(n)}"
                    )
                jsz = n.jsz()
                meta = jsz.get("meta_cluster") if jsz else None
                leaders.add(meta.get("leader") if isinstance(meta, dict) else None)
            if len(leaders) == 1 and None not in leaders and "" not in leaders:
                return
            if time.monotonic() > deadline:
                logs = " | ".join(f"{n.name}: {self.tail(n)}" for n in self.nodes)
                raise NatsStartError(f"no JetStream meta leader after {timeout:.0f} s: {logs}")
            time.sleep(0.05)

    def tail(self, node: NatsNode, lines: int = 3) -> str:
        try:
            return " / ".join(node.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (its store stays for a restart)."""
        p = self.nodes[i].process
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
        self.nodes[i].process = None

    def restart(self, i: int) -> None:
        """Starts node ``i`` again on its ports and store, and waits until the cluster agrees."""
        self.kill(i)
        self._spawn(i)
        self.wait_ready()

    def wait_healthy(self, i: int, timeout: float = 30.0) -> None:
        """Waits until node ``i`` reports JetStream current (a node that just came back catches
        up on its streams first)."""
        deadline = time.monotonic() + timeout
        while not self.nodes[i].healthy():
            if time.monotonic() > deadline:
                raise NatsStartError(f"node {i} not healthy {timeout:.0f} s after its restart")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM every node, SIGKILL what is left after STOP_TIMEOUT_S."""
        running = [n.process for n in self.nodes if n.process is not None]
        for p in running:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in running:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for n in self.nodes:
            n.process = None

    def __enter__(self) -> NatsCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_or_skip(root: Path, size: int = 3) -> NatsCluster:
    """The cluster, or a skip naming why nats-server is missing (CI allows none)."""
    try:
        binary = nats_server_path()
    except NatsUnavailable as e:
        pytest.skip(str(e))
    return NatsCluster.start(root, size, binary=binary)
