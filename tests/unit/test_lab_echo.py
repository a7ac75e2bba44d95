"""carpd_lab.echo's ICMP echo requests, read by scapy (an independent codec)."""

from __future__ import annotations

from scapy.layers.inet import ICMP

from carpd_lab.echo import request


def test_an_echo_request_is_what_scapy_reads_with_a_valid_checksum() -> None:
    wire = request(0x1234, 7)
    icmp = ICMP(wire)
    assert (icmp.type, icmp.code, icmp.id, icmp.seq) == (8, 0, 0x1234, 7)
    assert len(wire) == 64  # ping's default: 56 bytes of payload
    stored = icmp.chksum
    del icmp.chksum
    assert ICMP(bytes(icmp)).chksum == stored
