"""The status page, /api/status and /metrics (imported only with [web] enabled)."""
