"""The tables of carpd.toml, one module per family. Each key's docstring, right under
it, is its text in carpd.toml(5) (man/config.py reads it)."""
