"""The HTTP server of the runtimes: webhooks, the generic ingress and operations routes.

::

    app = build_app([(name, receiver), ...], inbox, status, telemetry)
    server = HttpServer(app)
    await server.start("127.0.0.1", 8080)
    ...
    await server.stop()
"""

from .app import DEFAULT_MAX_BODY, RESERVED_PATHS, build_app
from .inbox import Inbox, MemoryInbox
from .server import HttpServer
from .status import (
    ConnectorStatus,
    ErrorEntry,
    LogStatus,
    OutboxStatus,
    RecentErrors,
    Status,
    StatusSource,
    utc_now_iso,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "RESERVED_PATHS",
    "ConnectorStatus",
    "ErrorEntry",
    "HttpServer",
    "Inbox",
    "LogStatus",
    "MemoryInbox",
    "OutboxStatus",
    "RecentErrors",
    "Status",
    "StatusSource",
    "build_app",
    "utc_now_iso",
]
