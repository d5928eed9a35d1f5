"""The package's log lines come out where the server's do, at the extension's level."""

from __future__ import annotations

import logging

# Every module logs to a child of this logger (``jupyter_streamchat.runs``, ``.journal``, ...).
PACKAGE_LOGGER = "jupyter_streamchat"


class _ToExtensionLog(logging.Handler):
    """Hands the package's records to the extension's log, so they come out where the server's lines do.

    Module loggers are created at import, before any server exists, and nothing attaches them to the
    server's log: without this, everything below WARNING went nowhere and warnings came out unformatted.
    One instance for the process, re-pointed at each new extension app (tests start many in one process).
    """

    def __init__(self) -> None:
        super().__init__()
        self.target: logging.Logger | None = None

    def emit(self, record: logging.LogRecord) -> None:
        target = self.target
        if target is None:
            return
        # Only the target's own handlers (their levels and format; the record already passed the package
        # logger's level): the record itself still propagates to the root logger, so going up the target's
        # ancestors too would hand it to root's handlers twice.
        for handler in target.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


_TO_EXTENSION_LOG = _ToExtensionLog()

ExtensionLog = logging.Logger | logging.LoggerAdapter[logging.Logger]


def attach_package_log(log: ExtensionLog, log_level: object) -> None:
    """Hand the package's records to ``log`` (the extension's), at ``log_level`` unless the user set one."""
    package = logging.getLogger(PACKAGE_LOGGER)
    _TO_EXTENSION_LOG.target = log.logger if isinstance(log, logging.LoggerAdapter) else log
    # A ``jupyter_streamchat`` logger configured by the user (``ServerApp.logging_config``) keeps its own
    # handlers and level; otherwise it speaks at the extension's level, through the extension's log.
    if not package.handlers:
        package.addHandler(_TO_EXTENSION_LOG)
    if package.level == logging.NOTSET:
        package.setLevel(log_level if isinstance(log_level, int) else logging.getLevelName(str(log_level)))


def detach_package_log(log: ExtensionLog) -> None:
    """A stopped extension's log is gone: the package's records go back to plain propagation."""
    if _TO_EXTENSION_LOG.target is (log.logger if isinstance(log, logging.LoggerAdapter) else log):
        logging.getLogger(PACKAGE_LOGGER).removeHandler(_TO_EXTENSION_LOG)
        _TO_EXTENSION_LOG.target = None
