"""notify_url delivery with HiDream's rule: HTTP 200 counts, 5 s timeout, at most 3 attempts.

Delivery is best effort by design: a lost callback only delays the caller, who keeps polling.
Unless private URLs are allowed, every attempt goes to the addresses the guard checked.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from img2svg.net.guard import URLRefused, vet_url
from img2svg.net.transport import pinned_client

log = logging.getLogger("img2svg.service.callbacks")


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    *,
    attempts: int,
    timeout_s: float,
    interval_s: float,
    allow_private: bool,
) -> bool:
    """POST `payload` to `url` until one attempt gets HTTP 200; True when delivered."""
    try:
        target = await vet_url(url, allow_private=allow_private)
    except URLRefused as exc:
        log.warning("callback for task %s not sent: %s", payload.get("main_task_id"), exc)
        return False
    async with pinned_client(client, target) as sender:
        for attempt in range(1, attempts + 1):
            try:
                request = client.build_request("POST", url, json=payload, timeout=timeout_s)
                response = await sender.send(request, follow_redirects=False)
                if response.status_code == 200:
                    return True
                outcome = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            log.info(
                "callback attempt %d/%d for task %s: %s",
                attempt,
                attempts,
                payload.get("main_task_id"),
                outcome,
            )
            if attempt < attempts:
                await asyncio.sleep(interval_s)
    return False
