"""Atomic, durable writes: a file appears whole or not at all, with the umask's mode.

Crashes are real here: a writer in a child process is SIGKILLed in the middle of a large write.
`os.fsync` and `os.replace` are recorded by monkeypatching only to see that the OS was asked to
sync, and in what order; what reaches a disk on power loss cannot be observed from a test.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from img2svg.fsutil import atomic_path, atomic_write
from img2svg.service.server import write_port_file

BIG = 16 * 1024 * 1024


def run_child(code: str, *args: str, umask: int | None = None) -> str:
    """Run Python code in a fresh process (optionally under `umask`), return its stdout."""
    prefix = f"import os\nos.umask({umask:#o})\n" if umask is not None else ""
    done = subprocess.run(
        [sys.executable, "-c", prefix + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_atomic_write_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "a.svg"
    atomic_write(target, b"old")
    atomic_write(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert leftovers(tmp_path, {"a.svg"}) == []


def test_atomic_path_replaces_the_file_on_success(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert Path(tmp).parent == tmp_path and Path(tmp).exists()
        Path(tmp).write_text("new")
        assert target.read_bytes() == b"old"  # nothing visible before the end
    assert target.read_text() == "new"
    assert leftovers(tmp_path, {"results.csv"}) == []


# -- whole or not at all, across a SIGKILL -----------------------------------------------------

_HALF_WRITTEN = """
    import sys, time
    from img2svg.fsutil import atomic_path
    target, size = sys.argv[1], int(sys.argv[2])
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        handle.write(b"n" * (size // 2))
        handle.flush()
        print("half", flush=True)
        time.sleep(60)
        handle.write(b"n" * (size - size // 2))
"""


@pytest.mark.parametrize("old", [b"old content", None], ids=["replacing", "new-file"])
def test_killed_mid_write_leaves_the_old_file_or_none(tmp_path: Path, old: bytes | None) -> None:
    target = tmp_path / "results.parquet"
    if old is not None:
        target.write_bytes(old)
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HALF_WRITTEN), str(target), str(BIG)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "half"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    if old is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == old
    # The killed writer's temporary file stays behind, under a name no reader looks for.
    (stray,) = leftovers(tmp_path, {"results.parquet"})
    assert stray.startswith(".results.parquet.") and stray.endswith(".tmp")


_WRITE_FOREVER = """
    import sys
    from img2svg.fsutil import atomic_write
    target, size = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        atomic_write(target, bytes([i % 250 + 1]) * size)
"""


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.2, 0.5])
def test_killed_at_any_moment_never_leaves_a_partial_file(tmp_path: Path, delay_s: float) -> None:
    target = tmp_path / "a.svg"
    target.write_bytes(b"old")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_WRITE_FOREVER), str(target), str(BIG)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(delay_s)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    data = target.read_bytes()
    whole = len(data) == BIG and data.count(data[:1]) == BIG
    assert data == b"old" or whole, f"partial file: {len(data)} bytes"


# -- mode ---------------------------------------------------------------------------------------

_MODES = """
    import json, os, sys
    from img2svg.fsutil import atomic_path, atomic_write
    folder = sys.argv[1]
    atomic_write(os.path.join(folder, "a"), b"x")
    with atomic_path(os.path.join(folder, "b")) as tmp, open(tmp, "wb") as handle:
        handle.write(b"x")
    print(json.dumps({n: os.stat(os.path.join(folder, n)).st_mode & 0o777 for n in "ab"}))
"""


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_mode_follows_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    modes = json.loads(run_child(_MODES, str(tmp_path), umask=umask))
    assert modes == {"a": mode, "b": mode}


def test_output_store_files_are_0644_under_umask_022(tmp_path: Path) -> None:
    code = """
        import json, os, sys
        import pyarrow as pa, pyarrow.parquet as pq
        from img2svg.stores.outputs import OutputStore
        out = OutputStore(sys.argv[1])
        out.write_svg("r1", b"<svg/>")
        with out.writing("results.parquet") as path:
            pq.write_table(pa.table({"row_id": ["r1"]}), path)
        with out.writing("results.csv") as path, open(path, "w") as text:
            text.write("row_id\\nr1\\n")
        names = ["svgs/r1.svg", "results.parquet", "results.csv"]
        print(json.dumps({n: os.stat(out.local_path(n)).st_mode & 0o777 for n in names}))
    """
    modes = json.loads(run_child(code, str(tmp_path / "out"), umask=0o022))
    assert modes == {"svgs/r1.svg": 0o644, "results.parquet": 0o644, "results.csv": 0o644}
    assert leftovers(tmp_path / "out", {"svgs", "results.parquet", "results.csv"}) == []
    assert leftovers(tmp_path / "out" / "svgs", {"r1.svg"}) == []


def test_task_store_files_are_whole_and_0644_under_umask_022(tmp_path: Path) -> None:
    code = """
        import json, os, sys, time
        from pathlib import Path
        from img2svg.service.store import WAITING, Task, TaskStore
        store = TaskStore(Path(sys.argv[1]))
        fields = dict.fromkeys(Task.__dataclass_fields__)
        fields.update(task_id="t1", sub_task_id="s1", account="a", mode="fast",
                      status=WAITING, completion=0.0, outcome="convert",
                      base_url="http://127.0.0.1/", created_at=time.time())
        store.create(Task(**fields), b"image bytes")
        store.write_svg("s1", b"<svg/>")
        paths = [store.input_path("t1"), store.svg_path("s1")]
        print(json.dumps([[p.read_text(), p.stat().st_mode & 0o777] for p in paths]))
    """
    found = json.loads(run_child(code, str(tmp_path / "data"), umask=0o022))
    assert found == [["image bytes", 0o644], ["<svg/>", 0o644]]
    assert leftovers(tmp_path / "data" / "inputs", {"t1.bin"}) == []
    assert leftovers(tmp_path / "data" / "svgs", {"s1.svg"}) == []


def test_port_file_is_written_whole(tmp_path: Path) -> None:
    write_port_file(tmp_path / "port", 8123)
    assert (tmp_path / "port").read_text() == "8123\n"
    assert leftovers(tmp_path, {"port"}) == []


# -- failures leave nothing behind ----------------------------------------------------------------


def test_failing_body_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer broke"), atomic_path(target) as tmp:
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("writer broke")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, {"results.csv"}) == []


@pytest.mark.parametrize("write", ["atomic_write", "atomic_path"])
@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failing_sync_or_rename_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: str, failing: str
) -> None:
    target = tmp_path / "a.svg"
    target.write_bytes(b"old")

    def broken(*args: object) -> None:
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="simulated"):
        if write == "atomic_write":
            atomic_write(target, b"new")
        else:
            with atomic_path(target) as tmp:
                Path(tmp).write_bytes(b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, {"a.svg"}) == []


def test_a_directory_that_cannot_be_synced_is_tolerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "directory sync not supported here")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(tmp_path / "a.svg", b"new")
    assert (tmp_path / "a.svg").read_bytes() == b"new"


# -- fsync: the file before the rename, the directory after ---------------------------------------


@pytest.fixture
def os_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record ("fsync", path) and ("replace", target) calls, still doing them for real."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        calls.append(("replace", os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return calls


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
@pytest.mark.parametrize("write", ["atomic_write", "atomic_path"])
def test_syncs_file_then_renames_then_syncs_directory(
    tmp_path: Path, os_calls: list[tuple[str, str]], write: str
) -> None:
    target = tmp_path / "a.svg"
    if write == "atomic_write":
        atomic_write(target, b"<svg/>")
    else:
        with atomic_path(target) as tmp:
            Path(tmp).write_bytes(b"<svg/>")
    (kind, synced), replaced, synced_dir = os_calls
    assert kind == "fsync" and synced.endswith(".tmp")
    assert Path(synced).parent == tmp_path.resolve()
    assert replaced == ("replace", str(target))
    assert synced_dir == ("fsync", str(tmp_path.resolve()))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name an fd")
def test_output_store_syncs_what_it_writes(tmp_path: Path, os_calls: list[tuple[str, str]]) -> None:
    from img2svg.stores.outputs import OutputStore

    out = OutputStore(str(tmp_path))
    out.write_svg("r1", b"<svg/>")
    with out.writing("results.csv") as path:
        Path(path).write_text("row_id\n")
    replaced = [target for kind, target in os_calls if kind == "replace"]
    assert replaced == [str(tmp_path / "svgs" / "r1.svg"), str(tmp_path / "results.csv")]
    synced_dirs = [p for kind, p in os_calls if kind == "fsync" and Path(p).is_dir()]
    root = tmp_path.resolve()
    assert synced_dirs == [str(root / "svgs"), str(root)]
