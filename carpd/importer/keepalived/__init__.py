"""keepalived.conf (as carpd.importer.parse reads it) to a carpd.toml and a report.

What keepalived does, as its sources say (keepalived 2.3: vrrp_parser.c, vrrp_track.c,
vrrp_ipaddress.c, vrrp_notify.c, trackers/track_file.c), and what it becomes here:

- ``vrrp_instance`` -> ``[[carp]]``. VRRPv3 (``protocol = "vrrp3"``) by default, so a
  converted node goes on electing with a keepalived node; keepalived's default is
  VRRPv2 (``vrrp_version 2``), which carpd does not speak: the output is VRRPv3 anyway
  and the report says the keepalived peers need ``vrrp_version 3`` (or the whole cluster
  ``--to carp``). ``priority`` stays (255, the address owner, becomes 254); keepalived's
  defaults are written out: ``advbase`` (advert_int 1), ``preempt = true`` (keepalived
  preempts unless ``nopreempt``), ``accept`` (on unless ``vrrp_strict``/``no_accept``).
- A bare virtual address is /32 (/128), on the instance's interface; one of the other
  family is ignored, as keepalived ignores it ("address family must match").
- Trackers (``track_script``, ``track_interface``, ``track_file``, ``track_process``) ->
  ``[[track]]`` scoped with ``vhids`` (in an instance) or ``groups`` (in a sync group),
  one per tracked object and weight. keepalived's weights: W > 0 adds W to the priority
  while the object is up, W < 0 subtracts -W while it is down, 0 puts the instance in
  FAULT while it is down; the effective priority is kept in 1..254. carpd's weight is
  a demotion while down (VRRPv3: priority - demotion, at least 1). So W > 0 becomes
  ``priority + W`` and a tracker of weight W, W < 0 a tracker of weight -W (both exact
  while the priority stays under 254), and 0 a tracker of the default weight 2^20:
  priority 1, which still advertises and stays MASTER when no other node is up, where
  keepalived's FAULT stops advertising and removes the addresses (reported).
  keepalived's rise/fall/interval/timeout defaults (1, 1, 1 s, the interval) are
  written out: carpd's differ.
- ``notify_master`` -> an ``[[action]]`` on master; ``notify_backup``, ``notify_fault``
  and ``notify_stop`` -> actions on backup that run only for the state keepalived ran
  them for (``CARP_STATE`` BACKUP, INIT); ``notify`` -> an action that runs the script
  with keepalived's arguments: ``INSTANCE|GROUP NAME MASTER|BACKUP|FAULT PRIORITY``.
- ``--to carp``: ``protocol = "carp"``, ``advskew = 254 - priority`` (priority 1..254
  to advskew 253..0: the order of every node's priorities is kept, with no clipping),
  ``advbase`` the advert interval rounded up to whole seconds, a ``passfile``.

The modules, one job each: ``driver`` reads the file in passes and writes the document;
``state`` is what the passes share; ``global_defs``, ``tracked`` (vrrp_script,
track_file, vrrp_track_process), ``sync_groups`` and ``instances`` (with
``addresses``) read keepalived's blocks; ``uses`` weighs each track_* line, ``tracks``
makes the [[track]] tables from them and ``priorities`` the final priorities;
``notify`` makes the [[action]]s; ``unsupported`` says what has no equivalent.
"""

from carpd.importer.keepalived.driver import Translation, translate

__all__ = ["Translation", "translate"]
