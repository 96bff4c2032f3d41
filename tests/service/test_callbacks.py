"""notify_url: HiDream's delivery rule, and polling unaffected when callbacks fail."""

from __future__ import annotations

import json

import httpx

from tests.helpers import LoopbackServer, b64, logo_png, metric, submit, wait_for, wait_terminal


def test_callback_delivered_on_completion(api: httpx.Client, web: LoopbackServer) -> None:
    task_id = submit(api, b64(logo_png(24)), notify_url=web.url + "/hook")
    final = wait_terminal(api, task_id)
    wait_for(lambda: web.posts, timeout_s=10)
    path, body = web.posts[0]
    payload = json.loads(body)
    assert path == "/hook"
    assert payload["main_task_id"] == task_id
    assert payload["sub_task_results"] == [final]
    wait_for(lambda: metric(api, "img2svg_callback_deliveries_total", '{result="delivered"}') == 1)


def test_failing_callback_is_tried_three_times_and_polling_still_works(
    api: httpx.Client, web: LoopbackServer
) -> None:
    web.post_status = lambda path: 500
    task_id = submit(api, b64(logo_png(24)), notify_url=web.url + "/broken")
    assert wait_terminal(api, task_id)["task_status"] == 1
    wait_for(
        lambda: metric(api, "img2svg_callback_deliveries_total", '{result="failed"}') == 1,
        timeout_s=15,
    )
    assert [p for p, _ in web.posts] == ["/broken"] * 3


def test_unreachable_callback_does_not_block_the_task(api: httpx.Client) -> None:
    task_id = submit(api, b64(logo_png(24)), notify_url="http://127.0.0.1:1/hook")
    assert wait_terminal(api, task_id)["task_status"] == 1
