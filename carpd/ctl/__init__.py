"""carpctl: talks to a running carpd over its control socket (JSON lines)."""
