"""Async client for HiDream's img2svg API (and the local service that speaks it)."""

from img2svg.client.answers import UNKNOWN_TASK_CODES
from img2svg.client.client import HIDREAM_URL, AsyncImg2SvgClient, RetryPolicy
from img2svg.client.errors import (
    AcceptedUnreadable,
    ApiRefused,
    BadResponse,
    ClientError,
    Img2SvgError,
    NetworkError,
    RateLimited,
    RefusedError,
    ResultUrlGone,
    ServerError,
    SubmissionsHalted,
    TransientError,
    Unauthorized,
)
from img2svg.client.models import SubmittedTask, TaskStatus, TaskView, Verdict
from img2svg.client.throttle import Throttle

__all__ = [
    "HIDREAM_URL",
    "UNKNOWN_TASK_CODES",
    "AcceptedUnreadable",
    "ApiRefused",
    "AsyncImg2SvgClient",
    "BadResponse",
    "ClientError",
    "Img2SvgError",
    "NetworkError",
    "RateLimited",
    "RefusedError",
    "ResultUrlGone",
    "RetryPolicy",
    "ServerError",
    "SubmissionsHalted",
    "SubmittedTask",
    "TaskStatus",
    "TaskView",
    "Throttle",
    "TransientError",
    "Unauthorized",
    "Verdict",
]
