"""Nodes that see each other: each one's status page over HTTPS (a certificate made in
the lab, pinned by the others), a [web] user for the peers, and [[cluster.peer]] tables
naming the other nodes, as docs/operations.md tells an operator to set it up."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from carpd_lab.cluster import Node
from carpd_lab.netlab import Lab

PORT = 8473
USER, PASSWORD = "cluster", "lab-cluster-password"
# Seconds between two reads of a peer, and one read's bound: a TLS handshake and the
# first scrypt check of the user (some 70 ms idle, several times that on a busy machine).
INTERVAL, TIMEOUT = 2.0, 1.5


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path
    fingerprint: str  # "AB:CD:..." as openssl prints it
    spki: str  # base64 SHA-256 of its public key: what chromium is told to trust


def identity(lab: Lab, name: str, address: str) -> Identity:
    """A self-signed certificate for ``address``, made with openssl in the lab's dir."""
    cert, key = lab.tmp / f"{name}-web.pem", lab.tmp / f"{name}-web.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", f"/CN={name}", "-addext", f"subjectAltName=IP:{address}",
         "-days", "2", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    spki = subprocess.run(
        ["sh", "-c", 'openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der'
         ' | openssl dgst -sha256 -binary | base64', "spki", str(cert)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return Identity(cert, key, out.strip().split("=", 1)[1], spki)


def users_file(lab: Lab) -> Path:
    """The peers' user, written by `carpctl web-user` as an operator would."""
    path = lab.tmp / "cluster-users"
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "carpd.ctl", "web-user", USER, "--append", str(path)],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
    return path


def join(lab: Lab, nodes: dict[str, Node], interval: float = INTERVAL) -> dict[str, Identity]:
    """Give each node (by its address) a status page and the others as peers; then
    (re)start them as the test says. The nodes' configs are written, not started."""
    ids = {address: identity(lab, n.name, address) for address, n in nodes.items()}
    users = users_file(lab)
    passfile = lab.tmp / "cluster-pass"
    passfile.write_text(PASSWORD + "\n")
    passfile.chmod(0o600)
    for address, node in nodes.items():
        me = ids[address]
        node.global_.setdefault("node_name", node.name)
        node.tables["web"] = {
            "enabled": True,
            "listen": ["127.0.0.1", address],
            "port": PORT,
            "tls_cert": str(me.cert),
            "tls_key": str(me.key),
            "users_file": str(users),
        }
        node.tables["cluster"] = {"interval": interval, "timeout": TIMEOUT}
        node.arrays["cluster.peer"] = [
            {
                "name": other.name,
                "url": f"https://{peer}:{PORT}",
                "user": USER,
                "passfile": str(passfile),
                "fingerprint": ids[peer].fingerprint,
            }
            for peer, other in nodes.items()
            if other is not node
        ]
        node.write_config()
    return ids
