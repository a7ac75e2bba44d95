"""``carpctl doctor``: what on this node breaks a CARP or firewall pair, each finding with
what was seen and the fix. Node-local checks (the config, nftables, sysctls, bridges,
conntrackd.conf) and, when carpd runs, what its status says about the adverts it hears
and, through its cluster view, about the pair: the peer's vhid settings, preemption and
clock next to this node's.

It reads the node and the daemon's status, and never changes either: ``ruleset`` is
sans-IO (an nftables ruleset's verdict for one packet), ``node`` reads the node,
``daemon`` reads carpd's status JSON, ``pair`` the cluster view in it, ``report``
renders; ``run`` puts them together.
"""
