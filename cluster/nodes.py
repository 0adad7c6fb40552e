"""A real multi-node Ray cluster on one machine: a head and worker raylets, each its own `ray start` process.

Glue for the lost-node drill (``tests/cluster/test_submit.py``, ``ouro bench faults``' node row) and the
README's multi-node recipe. Each node is a ``ray start --block`` process in its own process group on its own
loopback address (``127.0.0.1`` the head, ``127.0.0.2``… the workers: Linux routes all of 127/8 to the
loopback device), so

- a driver on this machine attaches to the head's raylet (its address is the GCS address), never to a
  worker's, and loses nothing of its own when a worker node goes;
- one node can be lost for real, :meth:`LocalNodes.kill`: ``kill -9`` of its process group, the raylet and
  every worker process it started, as when a machine dies; the other nodes and the GCS go on;
- every port is chosen free and the temp dir is the caller's, so other Ray clusters on this machine are
  neither joined nor stopped (``ray stop`` would stop them all: :meth:`LocalNodes.stop` kills only its own
  process groups).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

_PORT_FLAGS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
               "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")
"""Ports every node opens; Ray's fixed defaults would collide with another cluster on this machine."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class Node:
    """One ``ray start`` process (and everything it started, in its process group)."""

    name: str
    ip: str
    num_cpus: int
    resources: Mapping[str, float]
    proc: subprocess.Popen
    log: Path
    lost: bool = False


@dataclass
class LocalNodes:
    """Nodes of one Ray cluster on this machine; ``env`` adds to every node's environment (``RAY_AUTH_MODE``, Ray
    system settings). Use as a context manager, so the nodes are stopped.

    ``temp_dir`` (default: a new ``/tmp/ouro-nodes-*``, removed by :meth:`stop`) holds the head's Ray session (each
    other node's in ``temp_dir/<name>``) and each node's ``ray start`` log; keep it short: Ray's socket paths under
    it must stay within 107 characters."""

    temp_dir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout_s: float = 120.0
    nodes: dict[str, Node] = field(default_factory=dict)
    address: str | None = None

    def __post_init__(self) -> None:
        self._owns_temp_dir = self.temp_dir is None
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ouro-nodes-", dir="/tmp")) if self.temp_dir is None \
            else Path(self.temp_dir)

    def __enter__(self) -> "LocalNodes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_head(self, num_cpus: int, resources: Mapping[str, float] | None = None, ip: str = "127.0.0.1",
                   dashboard_port: int | None = None) -> str:
        """The head node (GCS, its raylet; with ``dashboard_port`` the dashboard and its Job API there, as
        ``ouro submit`` needs); returns the cluster address ``ip:port``."""
        if self.address is not None:
            raise RuntimeError(f"this cluster already has its head at {self.address}")
        port = free_port(ip)
        dashboard = (["--include-dashboard=true", f"--dashboard-host={ip}", f"--dashboard-port={dashboard_port}"]
                     if dashboard_port else ["--include-dashboard=false"])
        self._start("head", ip, num_cpus, resources or {}, ["--head", f"--port={port}",
                                                            f"--ray-client-server-port={free_port(ip)}", *dashboard])
        self.address = f"{ip}:{port}"
        return self.address

    def add_node(self, name: str, ip: str, num_cpus: int, resources: Mapping[str, float] | None = None) -> Node:
        """A worker node joined to the head, on its own loopback address ``ip`` (127.0.0.2, …)."""
        if self.address is None:
            raise RuntimeError("start the head first (LocalNodes.start_head)")
        if name in self.nodes:
            raise ValueError(f"a node named {name!r} already runs; fix: give the new node another name")
        return self._start(name, ip, num_cpus, resources or {}, [f"--address={self.address}"])

    def _start(self, name: str, ip: str, num_cpus: int, resources: Mapping[str, float], role: list[str]) -> Node:
        ray_cli = str(Path(sys.executable).with_name("ray"))
        ports = [f"{flag}={free_port(ip)}" for flag in _PORT_FLAGS]
        # Each node its own temp dir, as each machine has its own disk: in a shared one two nodes' runtime-env
        # agents unpack a job's working_dir into the same directory, and one removes files the other's
        # driver is importing (an `ouro submit` job failed with ModuleNotFoundError that way).
        node_dir = self.temp_dir if "--head" in role else self.temp_dir / name
        cmd = [ray_cli, "start", *role, f"--node-ip-address={ip}", f"--num-cpus={num_cpus}", "--num-gpus=0",
               f"--resources={json.dumps(dict(resources))}", f"--temp-dir={node_dir}", "--disable-usage-stats",
               "--min-worker-port=0", "--max-worker-port=0", *ports, "--block"]
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        log = self.temp_dir / f"{name}.log"
        # A head enables Ray's token auth by default, but a joining `ray start` sends the token only in token mode.
        auth = {} if "--head" in role else self.client_env()
        with open(log, "w") as out:
            # its own session: the raylet and the workers it forks share the process group, killed as one
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, **auth, **self.env})
        node = Node(name, ip, num_cpus, dict(resources), proc, log)
        self.nodes[name] = node
        self._await_started(node)
        return node

    def _await_started(self, node: Node) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"`ray start` of node {node.name!r} exited with {node.proc.returncode}; its log "
                                   f"{node.log}:\n{node.log.read_text()[-2000:]}")
            if "Ray runtime started" in node.log.read_text():
                return
            time.sleep(0.2)
        raise TimeoutError(f"node {node.name!r} did not start within {self.start_timeout_s:g} s; its log: {node.log}")

    def client_env(self) -> dict[str, str]:
        """What a driver joining these nodes needs in its environment: Ray's auth mode (a head turns token auth on
        by default, and `ray.init(address=…)` sends the token, from ``~/.ray/auth_token``, only in token mode)."""
        return {"RAY_AUTH_MODE": self.env.get("RAY_AUTH_MODE", "token")}

    def pids(self, name: str) -> list[int]:
        """The processes of node ``name`` now: its ``ray start``, raylet, agents and workers (its process group,
        and the descendants of its members should one have started a group of its own)."""
        table = _process_table()
        mine = {pid for pid, (_, pgid) in table.items() if pgid == self.nodes[name].proc.pid}
        grew = True
        while grew:
            more = {pid for pid, (ppid, _) in table.items() if ppid in mine} - mine
            mine |= more
            grew = bool(more)
        return sorted(mine)

    def kill(self, name: str) -> float:
        """Lose node ``name`` as a machine is lost: ``kill -9`` of its raylet and every process it started
        (:meth:`pids`); the time of the kill."""
        self._signal(name, signal.SIGKILL)
        self.nodes[name].proc.wait()
        self.nodes[name].lost = True
        return time.time()

    def _signal(self, name: str, sig: int) -> None:
        for pid in self.pids(name):
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, sig)

    def stop(self, grace_s: float = 3.0) -> None:
        """Stop every node this object started (workers first, the head last): SIGTERM to each node's processes
        (``ray start --block`` stops its raylet and workers), SIGKILL to what is left after ``grace_s``."""
        for name in sorted(self.nodes, key=lambda n: n == "head"):
            node = self.nodes[name]
            self._signal(name, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL below ends what is left
                node.proc.wait(grace_s)
            self._signal(name, signal.SIGKILL)
            node.proc.wait()
        self.nodes.clear()
        self.address = None
        if self._owns_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process now (Linux ``/proc``)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone between the listing and the read
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp, …
        table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table
