"""Qt's own messages (qWarning and friends) routed into Python logging (logger `tapi_agent.qt`)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

QT_LOGGER = "tapi_agent.qt"

_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def qt_message_handler(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Log one Qt message with its category (e.g. `qt.qpa.xcb`) in the logger name."""
    category = getattr(context, "category", None) or "default"
    logger = logging.getLogger(f"{QT_LOGGER}.{category}")
    logger.log(_LEVELS.get(kind, logging.WARNING), "%s", message)


def install_qt_message_handler() -> None:
    """Send every Qt message to Python logging from now on."""
    qInstallMessageHandler(qt_message_handler)
