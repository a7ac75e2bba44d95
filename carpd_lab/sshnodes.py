"""Two nodes that sync files over real OpenSSH, in namespaces.

Network namespaces share the host's file system, and sync's paths are the same on both
nodes. So each node also has a private mount namespace in which its own directory is
bind-mounted at one path, ``ROOT``: inside node 1, ``ROOT/etc/carpd.toml`` is node 1's
file; inside node 2, node 2's. Nothing is mounted outside those namespaces, and the
host's own /etc and /run are never written (the nodes' /run is a tmpfs of their own, for
sshd's privilege separation directory).

Each node runs a real sshd (Debian's openssh-server) with a generated host key; one
generated client key is authorized on both; known_hosts lists both host keys.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carpd_lab import bounds
from carpd_lab.netlab import Host, Lab, LabError, LogWatch

SSHD = "/usr/sbin/sshd"


@dataclass
class SshNode:
    lab: Lab
    host: Host
    address: str  # where its sshd listens
    own: Path  # its directory, seen as ROOT inside the node
    root: Path
    holder: subprocess.Popen[bytes] = field(init=False)
    sshd: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        (self.own / "etc").mkdir(parents=True)
        (self.own / "state").mkdir()
        script = (
            f"mount --bind {self.own} {self.root} && mount -t tmpfs carpd-lab /run && "
            "mkdir -p /run/sshd && echo ready && exec sleep 2147483647"
        )
        self.holder = self.host.spawn(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE,
        )
        assert self.holder.stdout is not None
        LogWatch(self.holder.stdout).wait_for("^ready$", bounds.COMMAND)

    def argv(self, *argv: str) -> list[str]:
        """``argv`` inside the node: its network and its mounts."""
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--", *argv]

    def run(
        self, *argv: str, stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*argv), input=stdin, capture_output=True, text=True, timeout=timeout,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )  # fmt: skip

    def spawn(self, *argv: str, **kw: Any) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            self.argv(*argv), start_new_session=True, **kw
        )
        self.lab.procs.append(proc)
        return proc

    def path(self, rel: str) -> Path:
        """A file of this node, from outside (the test's view of ROOT/rel in the node)."""
        return self.own / rel

    def carpctl(
        self, *args: str, stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "carpd.ctl", *args, stdin=stdin, timeout=timeout)


@dataclass
class SshPair:
    lab: Lab
    bridge: str = "brmgmt"
    nodes: list[SshNode] = field(init=False)
    root: Path = field(init=False)
    keys: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.lab.tmp / "node"  # each node's own directory is mounted here
        self.root.mkdir()
        self.keys = self.lab.tmp / "ssh"
        self.keys.mkdir(mode=0o700)
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
        subprocess.run([*keygen, "-f", str(self.keys / "client")], check=True)
        (self.keys / "authorized_keys").write_text((self.keys / "client.pub").read_text())
        self.nodes = []
        known = []
        for n in (1, 2):
            host = self.lab.add_host(f"s{n}", f"203.0.113.{n}/24", bridge=self.bridge)
            key = self.keys / f"host{n}"
            subprocess.run([*keygen, "-f", str(key)], check=True)
            known.append(f"203.0.113.{n} {(key.with_suffix('.pub')).read_text().strip()}")
            own = self.lab.tmp / f"s{n}-own"
            self.nodes.append(SshNode(self.lab, host, f"203.0.113.{n}", own, self.root))
        (self.keys / "known_hosts").write_text("\n".join(known) + "\n")
        for n, node in enumerate(self.nodes, start=1):
            self.start_sshd(node, n)

    def start_sshd(self, node: SshNode, n: int) -> None:
        conf = self.keys / f"sshd{n}.conf"
        conf.write_text(
            f"ListenAddress {node.address}\nPort 22\nHostKey {self.keys / f'host{n}'}\n"
            f"AuthorizedKeysFile {self.keys / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n"
            "PrintMotd no\nLogLevel INFO\n"
            # SSH_USER_AUTH: the key a push came with, which the peer journals.
            "ExposeAuthInfo yes\n"
        )
        node.sshd = node.spawn(SSHD, "-D", "-e", "-f", str(conf), stderr=subprocess.PIPE)
        assert node.sshd.stderr is not None
        LogWatch(node.sshd.stderr).wait_for("Server listening on", bounds.START_UP)

    def ssh(self) -> list[str]:
        """[sync] ssh: this lab's key and known_hosts only, never the host's ~/.ssh."""
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.keys / "client"),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", f"UserKnownHostsFile={self.keys / 'known_hosts'}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip

    def stop_sshd(self, node: SshNode) -> None:
        if node.sshd is None:
            raise LabError(f"{node.host.name}: no sshd")
        self.lab.kill(node.sshd)
        node.sshd.wait(timeout=bounds.COMMAND)
