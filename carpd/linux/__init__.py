"""Thin Linux adapters around the sans-IO core."""
