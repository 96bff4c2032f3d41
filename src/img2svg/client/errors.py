"""What can go wrong talking to the API, split by what the caller should do about it.

    Img2SvgError
     ├── TransientError          the same request may work later
     │    ├── NetworkError       no (complete) answer: refused, dropped, timed out
     │    ├── ServerError        HTTP 5xx, or a business code the server marks retryable
     │    └── RateLimited        HTTP 429: quota used up for now
     ├── RefusedError            this request will never work as it is
     │    ├── ApiRefused         HTTP 200 with code != 0
     │    ├── Unauthorized       HTTP 401/403 on an API call
     │    ├── ClientError        another 4xx
     │    │    └── ResultUrlGone  403/404/410 on a result URL: poll again for a fresh one
     │    ├── BadResponse        an answer that is not the documented shape
     │    └── SubmissionsHalted  not sent: the run stopped submitting
     └── AcceptedUnreadable      code 0 to a submission, but no readable task id

Every error says whether the server may have acted on the request (`maybe_processed`): for a
submission, whether a billed task may exist. The client adds `reached_server`, the same over
every attempt it made. Messages never contain the token.
"""

from __future__ import annotations

from img2svg.api.codes import ErrorCode


class Img2SvgError(Exception):
    """Base of every error the client raises."""

    retryable: bool = False
    attempts: int = 1  # how many times the client sent the request before giving up
    # Whether any of those attempts may have been acted on (for a submission: a task may exist
    # and be billed). False when every attempt surely failed before the server acted.
    reached_server: bool = True

    @property
    def maybe_processed(self) -> bool:
        """Whether the server may have acted on this one attempt; unknown means yes."""
        return True


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
        self._maybe_processed = maybe_processed

    @property
    def maybe_processed(self) -> bool:
        return self._maybe_processed


class ServerError(TransientError):
    """HTTP 5xx, or a business code the server marks retryable."""

    def __init__(self, message: str, *, status_code: int, retry_after_s: float | None = None):
        super().__init__(message, retry_after_s=retry_after_s)
        self.status_code = status_code

    @property
    def maybe_processed(self) -> bool:
        return self.status_code != 503  # "unavailable": refused before any work


class RateLimited(TransientError):
    """HTTP 429: the account's rate or concurrency quota is used up for now."""

    @property
    def maybe_processed(self) -> bool:
        return False


class RefusedError(Img2SvgError):
    """The request will not succeed as it is; do not retry it."""

    @property
    def maybe_processed(self) -> bool:
        return False


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


class ResultUrlGone(ClientError):
    """A result URL answered 403/404/410: it expired; the task has a fresh one."""


class BadResponse(RefusedError):
    """The answer is not the JSON shape the API documents.

    Nobody can tell what the server did with a request answered this way (a proxy's HTML page
    may hide a created task), so it may have been processed.
    """

    @property
    def maybe_processed(self) -> bool:
        return True


class SubmissionsHalted(RefusedError):
    """Not sent: the run stopped submitting (the API refused the token for another request)."""


class AcceptedUnreadable(Img2SvgError):
    """Code 0 to a submission, so a task was created and billed, but no task id can be read."""
