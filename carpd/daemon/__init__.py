"""The asyncio runtime: feeds the core, drains its actions, serves the control socket."""
