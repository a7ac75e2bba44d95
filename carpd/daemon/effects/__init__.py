"""Effects: what acts on the host around a vhid's host actions (see daemon/lanes.py)."""
