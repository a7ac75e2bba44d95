"""The sans-IO protocol core: no sockets, no netlink, no subprocesses, no clock.

Time comes in as the ``now`` argument of every input; outputs are action objects.
"""
