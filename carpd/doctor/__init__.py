"""``carpctl doctor``: what on this node breaks a CARP or firewall pair, each finding with
what was seen and the fix. Node-local checks (the config, nftables, sysctls, bridges,
conntrackd.conf) and, when carpd runs, what its status says about the adverts it hears.

It reads the node and the daemon's status, and never changes either: ``ruleset`` is
sans-IO (an nftables ruleset's verdict for one packet), ``node`` reads the node,
``daemon`` reads carpd's status JSON, ``report`` renders; ``run`` puts them together.
"""
