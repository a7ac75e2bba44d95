"""Importing other failover daemons' configurations into carpd's (issue 31).

`parse` reads keepalived.conf(5) as keepalived does, sans-IO through `Files`, into
statements that keep their file and line so that what is not translated can be named.
"""

from carpd.importer.parse import (
    DiskFiles,
    Files,
    Node,
    NotConfigFile,
    ParseError,
    ParseWarning,
    parse,
)

__all__ = ["DiskFiles", "Files", "Node", "NotConfigFile", "ParseError", "ParseWarning", "parse"]
