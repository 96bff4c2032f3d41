"""A Prefect global concurrency limit caps submissions across all runs: each takes one slot."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from flows.convert import convert
from tests.helpers import logo_png


def _manifest(tmp_path: Path, n: int) -> Path:
    for i in range(n):
        (tmp_path / f"{i}.png").write_bytes(logo_png(40, seed=100 + i))
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"image_url": [f"{i}.png" for i in range(n)] + ["0.png"]}).to_csv(
        manifest, index=False
    )
    return manifest


def test_every_submission_takes_a_slot_of_the_shared_limit(start_service, tmp_path: Path):
    name = f"img2svg-test-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        # Slots decay so slowly that every slot taken by this run is still counted at the end.
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=100, slot_decay_per_second=0.001)
        )
    service = start_service()
    state = convert(
        manifest=str(_manifest(tmp_path, 4)),
        out=str(tmp_path / "out"),
        api_url=service.url,
        rate_limit=0,
        submission_limit=name,
        return_state=True,
    )
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
        assert limit.active_slots == 4  # 5 rows, 4 distinct images, 4 submissions
        client.delete_global_concurrency_limit_by_name(name)


def test_the_embedded_service_takes_no_slot_and_a_missing_limit_is_skipped(
    start_service, tmp_path: Path
) -> None:
    name = f"img2svg-test-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=100, slot_decay_per_second=0.001)
        )
    manifest = _manifest(tmp_path, 2)
    embedded = convert(
        manifest=str(manifest), out=str(tmp_path / "a"), submission_limit=name, return_state=True
    )
    assert embedded.is_completed()
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).active_slots == 0
        client.delete_global_concurrency_limit_by_name(name)

    remote = convert(
        manifest=str(manifest),
        out=str(tmp_path / "b"),
        api_url=start_service().url,
        rate_limit=0,
        submission_limit="img2svg-no-such-limit",
        return_state=True,
    )
    assert remote.is_completed()
    assert remote.result().succeeded == 3
