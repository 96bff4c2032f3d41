"""A killed service loses no task: unfinished work resumes after a restart on the same data dir."""

from __future__ import annotations

import httpx

from tests.helpers import b64, logo_png, result_of, submit, wait_terminal


def test_kill_9_and_restart_resumes_every_task(start_service, tmp_path) -> None:
    data_dir = tmp_path / "data"
    service = start_service("--latency", "2", "--workers", "1", data_dir=data_dir)
    with httpx.Client(base_url=service.url) as api:
        ids = [submit(api, b64(logo_png(32, seed=i))) for i in range(4)]
        statuses = {result_of(api, task_id)["task_status"] for task_id in ids}
    assert statuses <= {0, 2}
    service.kill()

    restarted = start_service("--workers", "2", data_dir=data_dir)
    with httpx.Client(base_url=restarted.url) as api:
        finals = [wait_terminal(api, task_id, timeout_s=60) for task_id in ids]
    assert [f["task_status"] for f in finals] == [1, 1, 1, 1]
    for final in finals:
        assert httpx.get(final["image"]).status_code == 200


def test_finished_tasks_and_svgs_survive_a_restart(start_service, tmp_path) -> None:
    data_dir = tmp_path / "data"
    service = start_service(data_dir=data_dir)
    with httpx.Client(base_url=service.url) as api:
        task_id = submit(api, b64(logo_png(32)))
        before = wait_terminal(api, task_id)
    service.stop()
    restarted = start_service(data_dir=data_dir)
    with httpx.Client(base_url=restarted.url) as api:
        after = result_of(api, task_id)
    assert after["task_status"] == 1
    assert after["sub_task_id"] == before["sub_task_id"]
    assert httpx.get(after["image"]).status_code == 200


def test_unfinished_task_whose_input_vanished_fails_with_reason(start_service, tmp_path) -> None:
    data_dir = tmp_path / "data"
    service = start_service("--latency", "30", "--workers", "1", data_dir=data_dir)
    with httpx.Client(base_url=service.url) as api:
        task_id = submit(api, b64(logo_png(32)))
    service.kill()
    (data_dir / "inputs" / f"{task_id}.bin").unlink()
    restarted = start_service(data_dir=data_dir)
    with httpx.Client(base_url=restarted.url) as api:
        final = wait_terminal(api, task_id)
    assert final["task_status"] == 3
    assert "restart" in final["description"]
