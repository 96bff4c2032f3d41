"""A submission whose answer is lost is repeated only where repeating cannot bill twice."""

from __future__ import annotations

import asyncio

import pytest

from img2svg.api.paths import SUBMIT_PATH
from img2svg.client import AsyncImg2SvgClient, RetryPolicy, ServerError
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

        with pytest.raises(ServerError):
            asyncio.run(submit())
        assert [path for path, _ in web.posts] == [SUBMIT_PATH] * posts
