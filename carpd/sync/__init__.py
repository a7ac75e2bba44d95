"""`carpctl sync`: keeping the nodes' files the same ("CARP does nothing to synchronize
system config. That's your job." -- seed 004), with a diff, an explanation, a journal on
both nodes, a check on the peer before anything is replaced, and rollback.

The transport is the system's OpenSSH: `ssh PEER carpctl sync serve` answers JSON lines
on the peer (agent.py). Nothing here runs inside carpd's loop: the daemon only reads the
last `status` result (drift) from a file.
"""
