"""One service per data dir, and an embedded service does not outlive the process that owns it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from img2svg.service.server import DataDirBusy, lock_data_dir
from tests.helpers import wait_for


def test_a_second_service_cannot_take_a_data_dir_in_use(start_service, tmp_path: Path) -> None:
    start_service(data_dir=tmp_path / "data")
    with pytest.raises(DataDirBusy, match="another img2svg service is using"):
        lock_data_dir(tmp_path / "data", wait_s=0.3)


def test_the_embedded_service_exits_when_its_owner_is_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from pathlib import Path
                from img2svg.service.embedded import EmbeddedService
                service = EmbeddedService(Path({str(tmp_path / "data")!r})).start()
                print(service.process.pid, flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        service_pid = int(owner.stdout.readline())
        os.kill(owner.pid, signal.SIGKILL)  # no chance to stop its child
        owner.wait()

        def gone() -> bool:
            try:
                os.kill(service_pid, 0)
            except ProcessLookupError:
                return True
            # A zombie re-parented to init is gone too, once reaped; check its state.
            stat = Path(f"/proc/{service_pid}/stat")
            return stat.exists() and stat.read_text().split()[2] == "Z"

        wait_for(gone, timeout_s=30)
        # And its data dir is free for the next run.
        lock_data_dir(tmp_path / "data", wait_s=5).close()
    finally:
        owner.kill()
