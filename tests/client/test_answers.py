"""Each documented answer, and each odd-but-possible one, read the way that cannot cost money.

Every case is a real HTTP answer from a loopback server, read by the real client.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from img2svg.api.paths import BATCH_RESULTS_PATH, RESULTS_PATH, SUBMIT_PATH
from img2svg.client import (
    AcceptedUnreadable,
    ApiRefused,
    AsyncImg2SvgClient,
    BadResponse,
    Img2SvgError,
    NetworkError,
    RateLimited,
    ResultUrlGone,
    RetryPolicy,
    ServerError,
    SubmittedTask,
    TaskView,
    Unauthorized,
    Verdict,
)
from tests.helpers import LoopbackServer, Route

QUICK = RetryPolicy(attempts=1, backoff_s=0.01, max_quota_wait_s=0)


def _json(payload: Any, status: int = 200, **headers: str) -> Route:
    return Route(status, json.dumps(payload).encode(), "application/json", headers=headers)


def _ok(result: Any) -> Route:
    return _json({"code": 0, "message": "Success", "request_id": "r", "result": result})


def _submit(route: Route, retry: RetryPolicy = QUICK) -> SubmittedTask:
    with LoopbackServer() as web:
        web.post_routes[SUBMIT_PATH] = route

        async def go() -> SubmittedTask:
            async with AsyncImg2SvgClient(web.url, retry=retry) as client:
                return await client.submit("aGVsbG8=", "fast")

        return asyncio.run(go())


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"task_id": "t-1", "sub_task_ids": ["s-1"]}, SubmittedTask("t-1", ("s-1",))),
        ({"task_id": 123, "sub_task_ids": [456]}, SubmittedTask("123", ("456",))),
        ({"task_id": "t-1", "sub_task_ids": None}, SubmittedTask("t-1", ())),
        ({"task_id": "t-1"}, SubmittedTask("t-1", ())),
        ({"task_id": "t-1", "sub_task_ids": "s-1"}, SubmittedTask("t-1", ("s-1",))),
    ],
    ids=["documented", "integer-ids", "null-sub-task-ids", "no-sub-task-ids", "scalar-sub-id"],
)
def test_a_code_0_submit_answer_is_a_billed_task_whatever_its_shape(result, expected) -> None:
    assert _submit(_ok(result)) == expected


@pytest.mark.parametrize(
    "result", [None, {}, {"task_id": None}, {"task_id": ""}, ["t-1"]], ids=repr
)
def test_a_code_0_answer_without_a_task_id_is_billed_but_unreadable(result) -> None:
    with pytest.raises(AcceptedUnreadable) as raised:
        _submit(_ok(result))
    assert raised.value.reached_server  # a task exists: never "not created"


@pytest.mark.parametrize(
    ("route", "error", "reached"),
    [
        (_json({"code": 1103, "message": "not an image"}), ApiRefused, False),
        (_json({"code": "1004", "message": "bad mode"}), ApiRefused, False),
        (_json({"message": "unauthorized"}, 401), Unauthorized, False),
        (_json({"code": 2002}, 429, **{"Retry-After": "1"}), RateLimited, False),
        (_json({"code": 5003}, 503), ServerError, False),
        (_json({"code": 5000}, 500), ServerError, True),
        (Route(502, b"<html>bad gateway</html>", "text/html"), ServerError, True),
        (Route(200, b"<html>maintenance</html>", "text/html"), BadResponse, True),
        (_json({"result": {"task_id": "t"}}), BadResponse, True),
    ],
    ids=["refused", "string-code", "401", "429", "503", "500", "502-html", "200-html", "no-code"],
)
def test_what_a_failed_submission_says_about_billing(
    route: Route, error: type[Img2SvgError], reached: bool
) -> None:
    with pytest.raises(error) as raised:
        _submit(route)
    assert raised.value.reached_server is reached


def _poll(route: Route, ids: list[str], path: str = BATCH_RESULTS_PATH) -> list[TaskView]:
    with LoopbackServer() as web:
        if path == BATCH_RESULTS_PATH:
            web.post_routes[path] = route
        else:
            web.routes[path] = route

        async def go() -> list[TaskView]:
            async with AsyncImg2SvgClient(web.url, retry=QUICK) as client:
                if path == BATCH_RESULTS_PATH:
                    return await client.results(ids)
                return [await client.result(ids[0])]

        return asyncio.run(go())


def _entry(*subs: dict[str, Any], task_id: Any = "t", **extra: Any) -> dict[str, Any]:
    return {"task_id": task_id, "sub_task_results": list(subs), **extra}


def _sub(status: Any, image: Any = "", **extra: Any) -> dict[str, Any]:
    return {
        "sub_task_id": "s",
        "task_status": status,
        "task_completion": 0,
        "image": image,
        **extra,
    }


URL = "https://cdn.example/s.svg"


@pytest.mark.parametrize(
    ("entry", "verdict"),
    [
        (_entry(), Verdict.PENDING),
        ({"task_id": "t", "sub_task_results": None}, Verdict.PENDING),
        ({"task_id": "t"}, Verdict.PENDING),
        (_entry(_sub(0)), Verdict.PENDING),
        (_entry(_sub(2)), Verdict.PENDING),
        (_entry(_sub(-1)), Verdict.PENDING),
        (_entry(_sub(9)), Verdict.PENDING),
        (_entry(_sub(1)), Verdict.PENDING),  # done, but no URL yet: success needs one
        (_entry(_sub(1, None)), Verdict.PENDING),
        (_entry(_sub(1, URL)), Verdict.DONE),
        (_entry(_sub("1", URL)), Verdict.DONE),
        (_entry(_sub(1, URL), task_id=7), Verdict.QUERY_ERROR),  # not the asked id: ask again
        (_entry(_sub(1, URL), _sub(2)), Verdict.PENDING),  # every sub-task must be done
        (_entry(_sub(3, description="bad image")), Verdict.FAILED),
        (_entry(_sub(1, URL), _sub(3)), Verdict.FAILED),
        (_entry(_sub(4)), Verdict.REJECTED),
        (_entry(code=1201, message="no such task_id"), Verdict.UNKNOWN_TASK),
        (_entry(code=1, message="busy, query later"), Verdict.QUERY_ERROR),
    ],
    ids=[
        "empty", "null", "absent", "waiting", "processing", "negative", "undocumented",
        "done-no-url", "done-null-url", "done", "string-status", "other-id", "half-done",
        "failed", "one-failed", "rejected", "unknown-task", "entry-error",
    ],
)  # fmt: skip
def test_what_a_batch_entry_says_about_its_task(entry: dict[str, Any], verdict: Verdict) -> None:
    (view,) = _poll(_ok([entry]), ["t"])
    assert view.task_id == "t" and view.verdict is verdict
    if verdict is Verdict.DONE:
        assert view.svg_url == URL and view.sub_task_id == "s"
    if verdict is Verdict.FAILED and entry["sub_task_results"][0].get("description"):
        assert view.reason == "bad image"


def test_a_batch_answer_is_matched_by_id_even_when_ids_are_integers() -> None:
    views = _poll(_ok([_entry(_sub(1, URL), task_id=2), _entry(_sub(0), task_id=1)]), ["1", "2"])
    assert [(v.task_id, v.verdict) for v in views] == [
        ("1", Verdict.PENDING),
        ("2", Verdict.DONE),
    ]


def test_a_single_result_refused_as_unknown_is_a_per_task_answer() -> None:
    route = _json({"code": 1201, "message": "task_id 't' not found"})
    (view,) = _poll(route, ["t"], path=RESULTS_PATH)
    assert view.verdict is Verdict.UNKNOWN_TASK and view.code == 1201
    (view,) = _poll(_ok(_entry(_sub(4))), ["t"], path=RESULTS_PATH)
    assert view.verdict is Verdict.REJECTED


def test_retry_after_zero_is_not_a_hot_loop() -> None:
    """A 429 saying "retry now" forever: the waits still grow, and the budget ends them."""
    retry = RetryPolicy(backoff_s=0.1, max_quota_wait_s=1.0)
    route = _json({"code": 2002, "message": "slow down"}, 429, **{"Retry-After": "0"})
    with LoopbackServer() as web:
        web.post_routes[SUBMIT_PATH] = route

        async def go() -> None:
            async with AsyncImg2SvgClient(web.url, retry=retry) as client:
                await asyncio.wait_for(client.submit("aGVsbG8=", "fast"), timeout=30)

        with pytest.raises(RateLimited) as raised:
            asyncio.run(go())
        # Waits of 0.1, 0.2, 0.4 s fit the 1 s budget; 0.8 more would not.
        assert len(web.posts) == 4 and raised.value.attempts == 4
        assert not raised.value.reached_server


def test_result_downloads_follow_redirects_on_the_apis_host() -> None:
    with LoopbackServer() as web:
        svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
        web.add("/cdn/s.svg", Route(200, svg, "image/svg+xml"))
        first = web.add("/r/s.svg", Route(302, b"", headers={"Location": "/cdn/s.svg"}))

        async def go() -> bytes:
            async with AsyncImg2SvgClient(web.url, retry=QUICK) as client:
                return await client.download(first)

        assert asyncio.run(go()) == svg


def test_a_redirect_off_the_apis_host_into_a_private_network_is_refused() -> None:
    with LoopbackServer() as web:
        elsewhere = web.add("/cdn/s.svg", Route(200, b"<svg/>", "image/svg+xml"))
        # The API is 127.0.0.1; "localhost" is another host, and on a loopback network.
        target = elsewhere.replace("127.0.0.1", "localhost")
        first = web.add("/r/s.svg", Route(302, b"", headers={"Location": target}))

        async def go() -> bytes:
            async with AsyncImg2SvgClient(web.url, retry=QUICK) as client:
                return await client.download(first)

        with pytest.raises(Img2SvgError, match="loopback or private"):
            asyncio.run(go())
        assert ("GET", "/cdn/s.svg") not in web.requests


@pytest.mark.parametrize("status", [403, 404, 410])
def test_an_expired_result_url_asks_for_a_fresh_one(status: int) -> None:
    with LoopbackServer() as web:
        url = web.add("/r/s.svg", Route(status, b"<Error>AccessDenied</Error>", "text/xml"))

        async def go() -> bytes:
            async with AsyncImg2SvgClient(web.url, retry=QUICK) as client:
                return await client.download(url)

        with pytest.raises(ResultUrlGone):
            asyncio.run(go())


def test_a_download_connection_refused_is_a_network_error() -> None:
    with LoopbackServer() as web:
        url = web.url + "/r/s.svg"

    async def go() -> bytes:
        async with AsyncImg2SvgClient(url.rsplit("/r/", 1)[0], retry=QUICK) as client:
            return await client.download(url)

    with pytest.raises(NetworkError):
        asyncio.run(go())
