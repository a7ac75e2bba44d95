"""carpd's man pages, carpd(8), carpctl(8) and carpd.toml(5), built by scripts/manpages.

The options come from the real argparse parsers and the keys from the config model, so
the pages cannot drift from the programs; the prose around them is in the ``*.in``
templates here, and each key's own text is its docstring in carpd/config/tables/.
"""
