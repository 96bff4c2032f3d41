"""The one exception type service code raises to answer with a business error code."""

from __future__ import annotations

from img2svg.api.codes import ErrorCode


class ApiError(Exception):
    """Answered as `{"code": code, "message": ...}` with the code's HTTP status.

    `detail` is appended to the message: it must say what was wrong with *this* request and
    never echo secrets.
    """

    def __init__(
        self, code: ErrorCode, detail: str | None = None, *, retry_after_s: int | None = None
    ) -> None:
        super().__init__(f"{code.name}: {detail}" if detail else code.name)
        self.code = code
        self.detail = detail
        self.retry_after_s = retry_after_s

    def message(self, language: str) -> str:
        base = self.code.message(language)
        return f"{base}: {self.detail}" if self.detail else base
