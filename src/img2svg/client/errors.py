"""What can go wrong talking to the API, split by what the caller should do about it.

`TransientError` and its subclasses mean "the same request may work later" (network faults,
timeouts, 5xx, 429 with Retry-After). `RefusedError` and its subclasses mean "this request will
never work" (`code != 0`, 4xx). Messages never contain the token.
"""

from __future__ import annotations

from img2svg.api.codes import ErrorCode


class Img2SvgError(Exception):
    """Base of every error the client raises."""

    retryable: bool = False
    attempts: int = 1  # how many times the client sent the request before giving up
    # Whether any of those attempts may have been acted on (for a submission: a task may exist
    # and be billed). False when every attempt surely failed before reaching the server.
    reached_server: bool = True


class TransientError(Img2SvgError):
    """Retry later; `retry_after_s` is the server's hint when it gave one."""

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NetworkError(TransientError):
    """No (complete) answer: connection refused or dropped, timeout.

    `maybe_processed` is False only when the request surely never reached the server (the
    connection was never made), so a retry cannot create a second task.
    """

    def __init__(self, message: str, *, maybe_processed: bool = True) -> None:
        super().__init__(message)
        self.maybe_processed = maybe_processed


class ServerError(TransientError):
    """HTTP 5xx, or a business code the server marks retryable."""

    def __init__(self, message: str, *, status_code: int, retry_after_s: float | None = None):
        super().__init__(message, retry_after_s=retry_after_s)
        self.status_code = status_code


class RateLimited(TransientError):
    """HTTP 429: the account's rate or concurrency quota is used up for now."""


class RefusedError(Img2SvgError):
    """The request will not succeed as it is; do not retry it."""


class ApiRefused(RefusedError):
    """HTTP 200 with `code != 0`: the service refused this request (bad image, bad field...)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"API error {code}: {message}")
        self.code = code
        self.api_message = message

    @property
    def error_code(self) -> ErrorCode | None:
        try:
            return ErrorCode(self.code)
        except ValueError:
            return None


class Unauthorized(RefusedError):
    """HTTP 401/403: the token is missing, wrong, expired or revoked."""


class ClientError(RefusedError):
    """Another 4xx answer."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class BadResponse(RefusedError):
    """The answer is not the JSON shape the API documents."""


class SubmissionsHalted(RefusedError):
    """Not sent: the run stopped submitting (the API refused the token for another request)."""
