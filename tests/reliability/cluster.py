"""A three-node nats-server cluster on loopback, from the bundled binary: cluster routes
between the nodes, JetStream on each with its own store, free ports. A node can be
SIGKILLed and started again on the same ports and store.

Synchronous, like the launcher it builds on; call it through trio.to_thread from Trio.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from roomkeeper.adapters.nats.server import ClusterConfig, NatsServerProcess, free_port

__all__ = ["NatsCluster"]

#: Seconds for the cluster to form and elect a JetStream meta leader.
FORM_TIMEOUT = 30.0


class NatsCluster:
    def __init__(self, base: Path, size: int = 3, name: str = "rk") -> None:
        route_ports = [free_port() for _ in range(size)]
        routes = tuple(f"nats://127.0.0.1:{port}" for port in route_ports)
        self.nodes = [
            NatsServerProcess(base / f"n{i}", server_name=f"n{i}",
                              cluster=ClusterConfig(name=name, port=port, routes=routes))
            for i, port in enumerate(route_ports)
        ]

    def url(self, index: int = 0) -> str:
        return self.nodes[index].url

    def start(self) -> None:
        """Start every node, then wait until each reports healthy: routes up and a
        JetStream meta leader elected (bounded by FORM_TIMEOUT)."""
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_healthy(FORM_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, index: int) -> int:
        """SIGKILL one node (no goodbye to its peers or clients); its pid."""
        node = self.nodes[index]
        pid = node.pid
        assert pid is not None and node.running, f"node {index} is not running"
        os.kill(pid, signal.SIGKILL)
        node.stop()  # reaps the killed process
        return pid

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        node.start()
        node.wait_healthy(FORM_TIMEOUT)

    def index_of(self, server_name: str) -> int:
        return [node.server_name for node in self.nodes].index(server_name)
