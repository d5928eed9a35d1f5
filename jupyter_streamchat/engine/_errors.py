"""Errors that carry an HTTP status, raised by the engine and turned into JSON by the handlers."""

from __future__ import annotations


class StreamChatError(Exception):
    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(StreamChatError):
    status = 400


class Forbidden(StreamChatError):
    status = 403


class NotFound(StreamChatError):
    status = 404


class Conflict(StreamChatError):
    status = 409


class PayloadTooLarge(StreamChatError):
    status = 413


class TooManyRuns(StreamChatError):
    status = 429
