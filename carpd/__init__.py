"""carpd: a CARP (Common Address Redundancy Protocol) failover daemon for Linux."""

__version__ = "0.1.0"
