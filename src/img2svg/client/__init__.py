"""Async client for HiDream's img2svg API (and the local service that speaks it)."""

from img2svg.client.client import HIDREAM_URL, AsyncImg2SvgClient, RetryPolicy
from img2svg.client.errors import (
    ApiRefused,
    BadResponse,
    ClientError,
    Img2SvgError,
    NetworkError,
    RateLimited,
    RefusedError,
    ServerError,
    SubmissionsHalted,
    TransientError,
    Unauthorized,
)
from img2svg.client.models import SubmittedTask, SubTaskResult, TaskResult, TaskStatus
from img2svg.client.throttle import Throttle

__all__ = [
    "HIDREAM_URL",
    "ApiRefused",
    "AsyncImg2SvgClient",
    "BadResponse",
    "ClientError",
    "Img2SvgError",
    "NetworkError",
    "RateLimited",
    "RefusedError",
    "RetryPolicy",
    "ServerError",
    "SubTaskResult",
    "SubmissionsHalted",
    "SubmittedTask",
    "TaskResult",
    "TaskStatus",
    "Throttle",
    "TransientError",
    "Unauthorized",
]
