"""A submission whose answer is lost is repeated only where repeating cannot bill twice."""

from __future__ import annotations

import asyncio

import pytest

from img2svg.api.paths import SUBMIT_PATH
from img2svg.client import AsyncImg2SvgClient, NetworkError, RetryPolicy, ServerError
from tests.helpers import LoopbackServer


@pytest.mark.parametrize(("honoured", "posts"), [(False, 1), (True, 3)])
def test_a_500_is_retried_only_if_the_server_dedupes_keys(honoured: bool, posts: int) -> None:
    with LoopbackServer() as web:
        web.post_status = lambda path: 500  # the server may have created the task, then failed

        async def submit() -> None:
            async with AsyncImg2SvgClient(
                web.url,
                retry=RetryPolicy(attempts=3, backoff_s=0.01),
                honours_idempotency_keys=honoured,
            ) as client:
                await client.submit("aGVsbG8=", "fast", idempotency_key="k1")

        with pytest.raises(ServerError) as raised:
            asyncio.run(submit())
        assert [path for path, _ in web.posts] == [SUBMIT_PATH] * posts
        assert raised.value.reached_server  # a task may exist: the ledger must remember it


def test_a_server_never_reached_is_known_not_to_have_billed() -> None:
    with LoopbackServer() as web:
        url = web.url  # nothing listens there once the server is closed
    retry = RetryPolicy(attempts=2, backoff_s=0.01)

    async def submit() -> None:
        async with AsyncImg2SvgClient(url, retry=retry) as client:
            await client.submit("aGVsbG8=", "fast", idempotency_key="k1")

    with pytest.raises(NetworkError) as raised:
        asyncio.run(submit())
    assert raised.value.attempts == 2 and not raised.value.reached_server
