"""The errors the client raises: one class per API error `code`, and two of the client's own."""

from __future__ import annotations

from typing import Any


class TidewaterError(Exception):
    """An error answer from tidewater: the HTTP status, the stable `code` and the `message`."""

    code: str = ""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class BadRequestError(TidewaterError):
    code = "bad_request"


class UnauthorizedError(TidewaterError):
    code = "unauthorized"


class ValidationFailedError(TidewaterError):
    code = "validation_failed"


class TooLargeError(TidewaterError):
    code = "too_large"


class NotFoundError(TidewaterError):
    code = "not_found"


class ConflictError(TidewaterError):
    code = "conflict"


class PreconditionFailedError(TidewaterError):
    code = "precondition_failed"


class UnavailableError(TidewaterError):
    """503: DynamoDB failed, throttled or timed out; nothing was half-written, safe to retry."""

    code = "unavailable"


class InternalError(TidewaterError):
    code = "internal"


ERRORS_BY_CODE: dict[str, type[TidewaterError]] = {
    cls.code: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ValidationFailedError,
        TooLargeError,
        NotFoundError,
        ConflictError,
        PreconditionFailedError,
        UnavailableError,
        InternalError,
    )
}


class RetriesExhaustedError(Exception):
    """The call kept failing with retryable errors until its deadline or its attempts ran out.

    `last` is the last failure: a `TidewaterError` (503) or an httpx transport error. For an
    append, the turn may or may not be stored: call again with the same `response_id`, which
    either stores it or answers the original `turn_index` with `duplicate=True`.
    """

    def __init__(self, attempts: int, elapsed: float, last: BaseException) -> None:
        super().__init__(f"gave up after {attempts} attempts in {elapsed:.1f} s: {last!r}")
        self.attempts = attempts
        self.elapsed = elapsed
        self.last = last


class StalePageError(Exception):
    """A page of an auto-paginated listing was served from a replica while the home region was
    unreachable (`Tidewater-Stale: true`): the listing may lack what the home holds, so it is
    not handed on as complete. Retry later, or page by hand and read each page's `stale`."""

    def __init__(self, items_before: int) -> None:
        super().__init__(f"a page was served stale after {items_before} items: the listing may be incomplete")
        self.items_before = items_before


def error_from_answer(status: int, body: Any, retry_after: float | None) -> TidewaterError:
    """The exception for an error answer; an unknown code or body still gives a TidewaterError."""
    code, message = "", ""
    if isinstance(body, dict):
        code = str(body.get("code", ""))
        message = str(body.get("message", ""))
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        if status == 503:
            cls = UnavailableError
        return (cls or TidewaterError)(status, code or f"http_{status}", message or "no error body", retry_after)
    return cls(status, code, message, retry_after)
