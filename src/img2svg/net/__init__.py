"""Fetching untrusted URLs safely: private-network guard, size and time bounds."""

from img2svg.net.fetch import Fetched, FetchError, FetchLimits, fetch_url
from img2svg.net.guard import URLRefused, check_url, is_private_host

__all__ = [
    "FetchError",
    "FetchLimits",
    "Fetched",
    "URLRefused",
    "check_url",
    "fetch_url",
    "is_private_host",
]
