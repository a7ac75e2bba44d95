"""What other systems call a key, and the facts about a key that its Field cannot hold.

(table, key) -> names. ``pfsense``: the pfSense GUI field (Firewall > Virtual IPs,
type CARP, unless said); ``ifconfig``: the ifconfig(8) carp option on the BSDs;
``sysctl``: the BSD sysctl; ``keepalived``: keepalived.conf's keyword, for VRRPv3.
The ucarp options come from carpd.config.ucarp_cli itself. A test checks that every
(table, key) here is a key of the model.
"""

from __future__ import annotations

NAMES: dict[tuple[str, str], dict[str, str]] = {
    ("global", "preempt"): {"sysctl": "net.inet.carp.preempt"},
    ("global", "log_level"): {"sysctl": "net.inet.carp.log"},
    ("global", "ifdown_demotion_factor"): {"sysctl": "net.inet.carp.ifdown_demotion_factor"},
    ("global", "senderr_demotion_factor"): {"sysctl": "net.inet.carp.senderr_demotion_factor"},
    ("global", "maintenance_demotion_factor"): {
        "pfsense": "Status > CARP: Enter Persistent CARP Maintenance Mode"
    },
    ("global", "realtime_priority"): {"keepalived": "vrrp_rt_priority"},
    ("global", "garp_refresh"): {"keepalived": "vrrp_garp_master_refresh"},
    ("carp", "name"): {"pfsense": "Description", "ifconfig": "the carp interface (carp0)"},
    ("carp", "vhid"): {
        "pfsense": "VHID Group",
        "ifconfig": "vhid",
        "keepalived": "virtual_router_id",
    },
    ("carp", "carpdev"): {"pfsense": "Interface", "ifconfig": "carpdev", "keepalived": "interface"},
    ("carp", "pass"): {"pfsense": "Virtual IP Password", "ifconfig": "pass"},
    ("carp", "protocol"): {"ifconfig": "carpver (FreeBSD)", "keepalived": "vrrp_version"},
    ("carp", "advbase"): {
        "pfsense": "Advertising frequency: Base",
        "ifconfig": "advbase (VRRPv3: vrrpinterval, FreeBSD)",
        "keepalived": "advert_int",
    },
    ("carp", "advskew"): {"pfsense": "Advertising frequency: Skew", "ifconfig": "advskew"},
    ("carp", "priority"): {"ifconfig": "vrrpprio (FreeBSD)", "keepalived": "priority"},
    ("carp", "accept"): {"keepalived": "accept"},
    ("carp", "vmac"): {"keepalived": "use_vmac"},
    ("carp", "peers"): {
        "ifconfig": "peer, peer6 (FreeBSD); carppeer (OpenBSD)",
        "keepalived": "unicast_peer",
    },
    ("carp", "addresses"): {
        "pfsense": "Address(es), with its netmask",
        "ifconfig": "the carp interface's inet and inet6 addresses",
        "keepalived": "virtual_ipaddress",
    },
    ("carp", "preempt"): {"sysctl": "net.inet.carp.preempt", "keepalived": "nopreempt (negated)"},
    ("carp", "garp_refresh"): {"keepalived": "garp_master_refresh"},
    ("carp", "groups"): {"ifconfig": "group"},
    ("pool", "carpdev"): {"ifconfig": "carpdev"},
    ("pool", "mode"): {"ifconfig": "balancing"},
    ("pool", "nodes"): {"ifconfig": "carpnodes"},
    ("pool", "pass"): {"ifconfig": "pass"},
    ("pool", "advbase"): {"ifconfig": "advbase"},
    ("conntrackd", "enabled"): {
        "pfsense": "System > High Avail. Sync: Synchronize states",
    },
    ("conntrackd", "interface"): {
        "pfsense": "System > High Avail. Sync: Synchronize Interface",
        "ifconfig": "pfsync0 syncdev",
    },
    ("conntrackd", "peer"): {
        "pfsense": "System > High Avail. Sync: pfsync Synchronize Peer IP",
        "ifconfig": "pfsync0 syncpeer",
    },
    ("conntrackd", "demotion_factor"): {"sysctl": "net.pfsync.carp_demotion_factor"},
    ("sync", "peer"): {"pfsense": "System > High Avail. Sync: Synchronize Config to IP"},
    ("action", "group"): {"keepalived": "vrrp_sync_group"},
    ("action", "on"): {"keepalived": "notify_master, notify_backup"},
}

# Defaults that a validator sets, not the Field.
DEFAULTS: dict[tuple[str, str], str] = {
    ("carp", "name"): '"carp<vhid>"',
    ("carp", "preempt"): '[global] preempt; true for protocol = "vrrp3"',
    ("carp", "srcip"): "the carpdev's first IPv4 address of its own",
    ("carp", "garp_refresh"): "[global] garp_refresh",
}

# Types whose words the annotation does not give (a custom validator parses them).
TYPES: dict[tuple[str, str], str] = {
    ("pool", "nodes"): 'array of "vhid:advskew" strings',
}
