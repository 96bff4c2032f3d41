"""Business error codes of the img2svg API.

HiDream answers business errors with HTTP 200 and `code != 0` but publishes no code table, so this
one is ours: the local service emits exactly these, the README documents them, and the client uses
`retryable` to decide between "try again later" and "this row is refused".
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Each member: (code, HTTP status, retryable, English message, Chinese message)."""

    SUCCESS = 0

    # 1xxx: the request itself is malformed; resending it unchanged cannot succeed.
    INVALID_JSON = 1001
    MISSING_FIELD = 1002
    UNKNOWN_FIELD = 1003
    INVALID_MODE = 1004
    INVALID_FIELD = 1005
    BODY_TOO_LARGE = 1006
    IDEMPOTENCY_CONFLICT = 1007

    # 11xx: the image is unusable.
    INVALID_BASE64 = 1101
    IMAGE_TOO_LARGE = 1102
    NOT_AN_IMAGE = 1103
    IMAGE_TRUNCATED = 1104
    BAD_DIMENSIONS = 1105
    IMAGE_URL_REFUSED = 1106
    IMAGE_URL_NOT_FOUND = 1107
    IMAGE_URL_TIMEOUT = 1108
    IMAGE_URL_FAILED = 1109

    # 12xx: lookups.
    UNKNOWN_TASK = 1201
    TOO_MANY_TASK_IDS = 1202

    # 13xx: conversion (sync interface only; async tasks report failures as task_status 3).
    CONVERSION_FAILED = 1301

    # 2xxx: account and quota.
    UNAUTHORIZED = 2001
    RATE_LIMITED = 2002
    CONCURRENCY_LIMITED = 2003

    # 5xxx: the service is at fault; retry.
    INTERNAL_ERROR = 5000
    SERVICE_UNAVAILABLE = 5003

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self, 200)

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (quota, overload, server fault)."""
        return self in _RETRYABLE

    def message(self, language: str = "zh") -> str:
        en, zh = _MESSAGES[self]
        return en if language == "en" else zh


_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.CONCURRENCY_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.BODY_TOO_LARGE: 413,
}

_RETRYABLE = frozenset(
    {
        ErrorCode.RATE_LIMITED,
        ErrorCode.CONCURRENCY_LIMITED,
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.SERVICE_UNAVAILABLE,
    }
)

_MESSAGES: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.SUCCESS: ("Success", "Success"),
    ErrorCode.INVALID_JSON: ("request body is not valid JSON", "请求体不是合法的 JSON"),
    ErrorCode.MISSING_FIELD: ("a required field is missing", "缺少必填参数"),
    ErrorCode.UNKNOWN_FIELD: (
        "the body has a field this interface does not know",
        "请求体包含未知参数",
    ),
    ErrorCode.INVALID_MODE: ("mode must be 'fast' or 'slow'", "mode 只能为 'fast' 或 'slow'"),
    ErrorCode.INVALID_FIELD: ("a field has the wrong type or value", "参数类型或取值错误"),
    ErrorCode.BODY_TOO_LARGE: ("request body is too large", "请求体过大"),
    ErrorCode.IDEMPOTENCY_CONFLICT: (
        "Idempotency-Key was already used with a different request",
        "Idempotency-Key 已用于不同的请求",
    ),
    ErrorCode.INVALID_BASE64: (
        "image is neither a URL nor valid base64",
        "image 既不是 URL 也不是合法的 base64",
    ),
    ErrorCode.IMAGE_TOO_LARGE: ("image file is too large", "图片文件过大"),
    ErrorCode.NOT_AN_IMAGE: (
        "image data is not a supported image format",
        "图片数据不是支持的图片格式",
    ),
    ErrorCode.IMAGE_TRUNCATED: ("image data is truncated or corrupt", "图片数据不完整或已损坏"),
    ErrorCode.BAD_DIMENSIONS: ("image dimensions are zero or too large", "图片尺寸为零或过大"),
    ErrorCode.IMAGE_URL_REFUSED: ("image URL is not allowed", "不允许访问该图片 URL"),
    ErrorCode.IMAGE_URL_NOT_FOUND: (
        "image URL answered with an HTTP error",
        "图片 URL 返回 HTTP 错误",
    ),
    ErrorCode.IMAGE_URL_TIMEOUT: ("image URL did not answer in time", "图片 URL 下载超时"),
    ErrorCode.IMAGE_URL_FAILED: ("image URL could not be downloaded", "图片 URL 无法下载"),
    ErrorCode.UNKNOWN_TASK: ("no such task_id", "task_id 不存在"),
    ErrorCode.TOO_MANY_TASK_IDS: (
        "too many task ids in one batch query",
        "单次批量查询的 task_id 过多",
    ),
    ErrorCode.CONVERSION_FAILED: ("the image could not be vectorized", "图片矢量化失败"),
    ErrorCode.UNAUTHORIZED: (
        "missing or invalid Authorization bearer token",
        "缺少或无效的 Authorization 令牌",
    ),
    ErrorCode.RATE_LIMITED: (
        "too many submissions per minute; retry later",
        "提交过于频繁，请稍后重试",
    ),
    ErrorCode.CONCURRENCY_LIMITED: (
        "too many tasks in progress for this account; retry later",
        "进行中的任务数已达上限，请稍后重试",
    ),
    ErrorCode.INTERNAL_ERROR: ("internal server error", "服务器内部错误"),
    ErrorCode.SERVICE_UNAVAILABLE: ("service temporarily unavailable", "服务暂时不可用"),
}
