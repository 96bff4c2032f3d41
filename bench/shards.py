"""What splitting a run costs: 1 shard vs 2 shards on 2 workers, same 2 cores (issue #10).

    uv run python bench/shards.py                        # 2,000 images, runs 1,2,2,1
    uv run python bench/shards.py --images 500 --order 1,2 --kind photo --size 64
    uv run python bench/shards.py --convert-args=--no-score   # both commands without scoring

On real components started here (as tests/scale/test_shards.py does): a PostgreSQL server, a
Prefect server with `prefect deploy --all`, and two process workers (`--limit 1`, each with a
state directory of its own). The catalog is N distinct small images in a temporary folder with
a CSV manifest; the manifest path and every --out are absolute (a shared filesystem).

Each timed run is the command a user types, with a fresh --out and a fresh PostgreSQL database:

    1 shard:  python -m img2svg.cli convert M --out OUT --id-column id --ledger postgresql://.../a
              (the whole run in that process, on its embedded service)
    2 shards: python -m img2svg.cli convert M --out OUT --id-column id --shards 2 --ledger ...

Both must exit 0 with N succeeded rows in results.parquet. Printed for each run: its wall, the
machine's CPU busy seconds (/proc/stat, everyone's) and the load average before it; the CPU
seconds of each component (sampled from /proc every 0.25 s: the CLI, the shards' flow-run
processes, the embedded services and their vectorizers, the scorer pools, the Prefect server,
PostgreSQL, and "others", which is not this bench) and its top processes; a timeline from the
Prefect server (each flow run created, picked up by a worker, running, ended, and its log
lines with task names), and which worker ran which shard. Then a table of all of it and the
ratio of the median walls against the goal: 2 shards <= 1.15 x 1 shard.

The code under test is a copy of the checkout taken at the start (tracked and untracked files;
`--no-snapshot` runs the live tree), so that edits made meanwhile by others do not land between
two timed runs: the CLI, the workers' flow runs and the services import the copy (PYTHONPATH;
the deployment's working directory is the copy). The machine is shared too: before each timed
run the bench waits (up to --wait-quiet seconds) for the 1-minute load average to fall below
--max-load, and says what it saw and who was busy.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.*
sys.path.insert(0, str(HERE.parent / "src"))

import pandas as pd  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402
from prefect.client.schemas.filters import (  # noqa: E402
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterStartTime,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import LogSort  # noqa: E402

from tests.helpers import logo_png  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402
from tests.stack import POOL, REPO, PrefectStack, running_prefect  # noqa: E402

GOAL = 1.15
PARENT_FLOW = "img2svg-convert"
SHARD_FLOW = "img2svg-shard"
WORKERS = ("w1", "w2")


# ---------------------------------------------------------------------------------- catalog


def photo_png(size: int, seed: int) -> bytes:
    """Something closer to a product photo than a logo: a lit gradient, soft shapes, sensor
    noise and a blur, so the tracer meets many colour regions."""
    rng = random.Random(seed)
    base = [rng.randrange(60, 200) for _ in range(3)]
    img = Image.new("RGB", (size, size))
    px = img.load()
    for y in range(size):
        for x in range(size):
            light = (x + y) / (2 * size)
            px[x, y] = tuple(int(c * (0.6 + 0.6 * light)) % 256 for c in base)
    pen = ImageDraw.Draw(img)
    for _ in range(5):
        x0, y0 = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(size // 8, size // 3)
        pen.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=tuple(rng.randrange(256) for _ in "rgb"))
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    noisy = img.load()
    for y in range(size):
        for x in range(size):
            r, g, b = noisy[x, y]
            n = rng.randrange(-12, 13)
            noisy[x, y] = (
                max(0, min(255, r + n)),
                max(0, min(255, g + n)),
                max(0, min(255, b + n)),
            )
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def make_catalog(folder: Path, images: int, kind: str, size: int) -> Path:
    """folder/m.csv (id,image_url) naming folder/images/<i>.png, N distinct images."""
    (folder / "images").mkdir(parents=True)
    draw = logo_png if kind == "logo" else photo_png
    seen: set[bytes] = set()
    with (folder / "m.csv").open("w") as manifest:
        manifest.write("id,image_url\n")
        for i in range(images):
            data = draw(size, seed=i)
            seen.add(data)
            (folder / "images" / f"{i}.png").write_bytes(data)
            manifest.write(f"r{i},images/{i}.png\n")
    assert len(seen) == images, "images are not distinct"
    return folder / "m.csv"


# ---------------------------------------------------------------------------- the machine


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def cpu_busy_jiffies() -> int:
    """Busy jiffies of the whole machine so far (every CPU, every process)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle  # guest time is already counted in user


def wait_quiet(max_load: float, patience_s: float) -> tuple[float, float]:
    """Wait until the 1-minute load is below max_load (at most patience_s); (load, waited)."""
    started = time.monotonic()
    while True:
        one = loadavg()[0]
        waited = time.monotonic() - started
        if one < max_load or waited >= patience_s:
            return one, waited
        time.sleep(10)


def busy_processes() -> str:
    """The top CPU users right now (ps), to say who else was working."""
    done = subprocess.run(
        ["ps", "-eo", "pcpu,etimes,args", "--sort=-pcpu"], capture_output=True, text=True
    )
    lines = done.stdout.splitlines()[1:6]
    return "\n".join("      " + line[:150] for line in lines)


class CpuByComponent:
    """CPU seconds (utime + stime, from /proc every 0.25 s) of each component of the bench
    during a run, and of everything else on the machine ("others")."""

    def __init__(self, postgres_root: Path | None) -> None:
        self.postgres_root = postgres_root
        self.last: dict[tuple[int, int], float] = {}  # (pid, start time) -> cpu seconds
        self.spent: dict[str, float] = {}
        self.labels: dict[tuple[int, int], str] = {}
        self.most_vectorizers = 0
        self.by_process: dict[tuple[int, int], float] = {}
        self.cmds: dict[tuple[int, int], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.ticks = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CpuByComponent:
        self._sample(count=False)  # what was spent before the run is not counted
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def _sample(self, count: bool = True) -> None:
        procs: dict[int, tuple[int, int, float, str]] = {}  # pid -> ppid, start, cpu, cmdline
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, UnicodeDecodeError):
                continue
            rest = stat.rpartition(")")[2].split()
            comm = stat[stat.find("(") + 1 : stat.rfind(")")]
            cpu = (int(rest[11]) + int(rest[12])) / self.ticks
            procs[int(entry)] = (int(rest[1]), int(rest[19]), cpu, cmd or f"[{comm}]")
        vectorizers = 0
        for pid, (_, start, cpu, cmd) in procs.items():
            key = (pid, start)
            exec_since = not cmd.startswith("[") and self.cmds.get(key, cmd) != cmd
            if key not in self.labels or exec_since:  # a zombie's cmdline is empty: kept
                self.labels[key] = self._label(pid, procs)
                self.cmds[key] = cmd
            label = self.labels[key]
            vectorizers += label.startswith("service vectorizers")
            before = self.last.get(key, 0.0)
            self.last[key] = cpu
            if count:
                self.spent[label] = self.spent.get(label, 0.0) + cpu - before
                self.by_process[key] = self.by_process.get(key, 0.0) + cpu - before
        self.most_vectorizers = max(self.most_vectorizers, vectorizers)

    def _label(self, pid: int, procs: dict[int, tuple[int, int, float, str]]) -> str:
        chain, p = [], pid
        while p in procs and p not in chain and len(chain) < 30:
            chain.append(p)
            p = procs[p][0]
        cmds = [procs[q][3] for q in chain]
        own, above = cmds[0], cmds[1:]
        if self.postgres_root and any(str(self.postgres_root) in c for c in cmds):
            return "postgres"
        if os.getpid() not in chain:
            return "others (not this bench)"
        pool_child = "multiprocessing" in own
        if "img2svg.cli serve" in own:
            return "service API process(es)"
        if any("img2svg.cli serve" in c for c in above):
            return "service vectorizers"
        if "img2svg.cli convert" in own:
            return "CLI (parent flow) process"
        if "prefect worker start" in own:
            return "prefect worker processes"
        under_flow = any("img2svg.cli convert" in c or "prefect worker start" in c for c in above)
        if pool_child and under_flow:
            return "scorer pools"
        if any("prefect worker start" in c for c in above):
            return "shard flow-run processes"
        if any("prefect server start" in c for c in cmds):
            return "prefect server"
        if pid == os.getpid():
            return "this bench"
        return "other children of the bench"


# ------------------------------------------------------------------------------ the runs


@dataclass
class Run:
    label: str
    shards: int
    out: Path
    wall: float = 0.0
    cpu_busy_s: float = 0.0
    load_before: float = 0.0
    waited_s: float = 0.0
    started_at: datetime | None = None
    timeline: list[str] = field(default_factory=list)
    shard_lines: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    most_vectorizers: int = 0
    top: list[str] = field(default_factory=list)
    processes: dict[str, int] = field(default_factory=dict)  # label -> processes that ran


def convert(
    stack: PrefectStack,
    root: Path,
    manifest: Path,
    run: Run,
    ledger: str,
    verbose_parent: bool,
    postgres_root: Path | None,
) -> None:
    env = {**stack.env, "IMG2SVG_STATE_DIR": str(root / "state-parent")}
    if verbose_parent:  # the parent's INFO lines reach the server (the shards' always do)
        env["PREFECT_LOGGING_LEVEL"] = "INFO"
    command = [sys.executable, "-m", "img2svg.cli", "convert", str(manifest),
               "--out", str(run.out), "--id-column", "id", "--ledger", ledger]  # fmt: skip
    if run.shards > 1:
        command += ["--shards", str(run.shards)]
    command += CONVERT_ARGS
    busy0 = cpu_busy_jiffies()
    run.started_at = datetime.now().astimezone()
    with CpuByComponent(postgres_root) as cpu:
        started = time.monotonic()
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
        )
        run.wall = time.monotonic() - started
    run.cpu = dict(sorted(cpu.spent.items(), key=lambda kv: -kv[1]))
    run.most_vectorizers = cpu.most_vectorizers
    for key, spent in cpu.by_process.items():
        if spent > 0.0:
            label = cpu.labels[key]
            run.processes[label] = run.processes.get(label, 0) + 1
    top = sorted(cpu.by_process.items(), key=lambda kv: -kv[1])[:TOP_PROCESSES]
    run.top = [f"{v:6.1f} s  pid {k[0]:>6}  [{cpu.labels[k]}] {cpu.cmds[k][:110]}" for k, v in top]
    busy1 = cpu_busy_jiffies()
    ticks = os.sysconf("SC_CLK_TCK")
    run.cpu_busy_s = (busy1 - busy0) / ticks
    (root / "logs" / f"{run.label}.log").write_text(
        f"$ {' '.join(command)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{run.label} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    results = pd.read_parquet(run.out / "results.parquet")
    counts = results["status"].value_counts().to_dict()
    if len(results) != EXPECTED or counts != {"succeeded": EXPECTED}:
        raise SystemExit(
            f"{run.label}: {len(results)} rows, {counts} (wanted {EXPECTED} succeeded)"
        )
    svgs = sum(1 for _ in (run.out / "svgs").rglob("*.svg")) if (run.out / "svgs").exists() else 0
    run.timeline.append(f"{EXPECTED} succeeded rows, {svgs} SVG files")
    if run.shards > 1:  # which worker ran which shard: its embedded service's folder
        for worker in WORKERS:
            services = sorted((root / f"state-{worker}" / "services").glob("*"))
            mine = [p.name.split("-shard-")[1] for p in services
                    if p.name.startswith(_digest(run.out))]  # fmt: skip
            run.timeline.append(f"worker {worker} ran shard(s) {', '.join(mine) or 'none'}")


def _digest(out: Path) -> str:
    return hashlib.sha256(str(out).encode()).hexdigest()[:16]


EXPECTED = 0  # set in main
TOP_PROCESSES = 10
CONVERT_ARGS: list[str] = []  # --convert-args, given to both commands


async def _flow_runs(client: Any, flow: str, since: datetime) -> list[Any]:
    runs = await client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
        flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
    )
    # Not the nightly deployment's scheduled runs: only what this command created.
    return sorted((r for r in runs if r.created and r.created >= since), key=lambda r: r.created)


async def _states(client: Any, run_id: Any) -> dict[str, datetime]:
    """The first time the run entered each state type (SCHEDULED, PENDING, RUNNING, ...)."""
    seen: dict[str, datetime] = {}
    for state in await client.read_flow_run_states(run_id):
        seen.setdefault(state.type.value, state.timestamp)
    return seen


async def _logs(client: Any, run_id: Any) -> list[Any]:
    return await client.read_logs(
        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
        sort=LogSort.TIMESTAMP_ASC,
        limit=200,
    )


async def _timeline(client: Any, run: Run) -> None:
    """From the server: when the parent and each shard were created, picked up, running, done;
    and the shards' log lines, in seconds since the command was started."""
    assert run.started_at is not None
    t0 = run.started_at

    def at(moment: datetime | None) -> str:
        return "   -  " if moment is None else f"{(moment - t0).total_seconds():6.1f}"

    # The command's own run has no deployment (the nightly deployment schedules runs too).
    parents = [r for r in await _flow_runs(client, PARENT_FLOW, t0) if r.deployment_id is None]
    shards = await _flow_runs(client, SHARD_FLOW, t0) if run.shards > 1 else []
    for kind, flow_run in [*(("parent", p) for p in parents), *(("shard", s) for s in shards)]:
        states = await _states(client, flow_run.id)
        run.timeline.append(
            f"{kind:6} {flow_run.name[:36]:36} created {at(flow_run.created)}  "
            f"pending {at(states.get('PENDING'))}  running {at(states.get('RUNNING'))}  "
            f"ended {at(flow_run.end_time)}  {flow_run.state_name}"
        )
    for kind, flow_run in [*(("parent", p) for p in parents), *(("shard", s) for s in shards)]:
        who = kind if kind == "parent" else f"shard {flow_run.parameters.get('shard', '?')}"
        for log in await _logs(client, flow_run.id):
            text = log.message.replace("\n", " ")
            if log.task_run_id is not None:
                text = f"[{(await client.read_task_run(log.task_run_id)).name}] {text}"
            run.shard_lines.append(f"{at(log.timestamp)}  {who:8} {text[:140]}")


# ------------------------------------------------------------------------------------ main


def main() -> None:
    global EXPECTED
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument(
        "--kind",
        choices=["logo", "photo"],
        default="logo",
        help="logo: tests.helpers.logo_png; photo: gradients, noise and blur",
    )
    parser.add_argument("--size", type=int, default=48, help="image side in pixels")
    parser.add_argument("--order", default="1,2,2,1", help="shard counts of the timed runs")
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--wait-quiet", type=float, default=240.0, metavar="SECONDS")
    parser.add_argument(
        "--no-parent-logs",
        action="store_true",
        help="leave the parent at WARNING (the CLI's default): no parent timeline",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set in the two workers' environment only (so in the shards'), repeatable",
    )
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run the live checkout (default: a copy of it taken at the start, so that every "
        "timed run runs the same code while others edit the tree)",
    )
    parser.add_argument(
        "--convert-args",
        default="",
        metavar="ARGS",
        help="more arguments for both commands, e.g. '--no-score'",
    )
    args = parser.parse_args()
    EXPECTED = args.images
    CONVERT_ARGS.extend(args.convert_args.split())
    order = [int(n) for n in args.order.split(",")]

    if not args.no_snapshot and SNAPSHOT_ENV not in os.environ:
        snapshot_and_reexec()  # does not return
    if SNAPSHOT_ENV in os.environ:
        root = Path(os.environ[SNAPSHOT_ENV])
        print(f"running on the snapshot {HERE.parent} (PYTHONPATH {os.environ['PYTHONPATH']})")
    else:
        root = Path(tempfile.mkdtemp(prefix="img2svg-bench-shards-")).resolve()
        print(f"running on the live tree {HERE.parent}: other people's edits land mid-run")
    (root / "logs").mkdir()
    print(f"folder {root}; {os.cpu_count()} CPUs; load now {loadavg()}")
    started = time.monotonic()
    manifest = make_catalog(root / "catalog", args.images, args.kind, args.size)
    size_kib = sum(p.stat().st_size for p in (root / "catalog" / "images").iterdir()) / 1024
    print(f"{args.images} distinct {args.kind} images, {args.size} px, {size_kib:.0f} KiB, "
          f"made in {time.monotonic() - started:.1f} s; manifest {manifest}")  # fmt: skip

    worker_env = dict(pair.split("=", 1) for pair in args.worker_env)
    runs: list[Run] = []
    with PostgresServer() as pg, running_prefect(root / "prefect") as stack:
        stack.extra_env["PREFECT_LOGGING_EXTRA_LOGGERS"] = "img2svg"
        probe = "import img2svg, flows.shards as f; print(img2svg.__file__, f.__file__)"
        where = subprocess.run(
            [sys.executable, "-c", probe], cwd=REPO, env=stack.env, capture_output=True, text=True
        ).stdout.strip()
        print(f"the children import {where}")
        t = time.monotonic()
        deployed = stack.cli("deploy", "--all", "--no-prompt", timeout_s=300)
        assert f"{SHARD_FLOW}/img2svg-shard" in deployed, deployed
        print(f"prefect server on {stack.url}, deployed in {time.monotonic() - t:.1f} s")
        for name in WORKERS:
            stack.spawn(
                f"worker-{name}",
                "worker", "start", "--pool", POOL, "--type", "process", "--name", name,
                "--limit", "1",  # one shard per worker, as the README says
                env={"IMG2SVG_STATE_DIR": str(root / f"state-{name}"), **worker_env},
            )  # fmt: skip
        t = time.monotonic()
        online = wait_workers(stack, len(WORKERS))
        print(f"workers online after {time.monotonic() - t:.1f} s: {online}")

        for i, shards in enumerate(order):
            run = Run(f"run{i + 1}-{shards}shard", shards, root / f"out{i + 1}-{shards}shard")
            ledger = pg.create_database(f"bench{i + 1}")
            run.load_before, run.waited_s = wait_quiet(args.max_load, args.wait_quiet)
            others = busy_processes()
            print(f"\n== {run.label}: load {run.load_before:.2f} before "
                  f"(waited {run.waited_s:.0f} s)")  # fmt: skip
            if run.load_before >= args.max_load:
                print(f"   still busy after {args.wait_quiet:.0f} s; top CPU users:\n{others}")
            convert(stack, root, manifest, run, ledger, not args.no_parent_logs, pg.root)
            stack.call(_timeline, run)
            runs.append(run)
            print(f"   wall {run.wall:.1f} s; CPU busy {run.cpu_busy_s:.1f} s of "
                  f"{2 * run.wall:.1f} available ({run.cpu_busy_s / (2 * run.wall):.0%}); "
                  f"load after {loadavg()[0]:.2f}")  # fmt: skip
            parts = ", ".join(
                f"{k} {v:.1f} ({run.processes.get(k, 0)} proc)"
                for k, v in run.cpu.items()
                if v >= 0.05
            )
            print(f"   CPU s by component: {parts}; at most {run.most_vectorizers} "
                  "vectorizer processes at once")  # fmt: skip
            for line in run.top:
                print("     " + line)
            for line in run.timeline:
                print("   " + line)
            for line in run.shard_lines:
                print("     " + line)

    print("\n== summary")
    for run in runs:
        print(f"{run.label:14} wall {run.wall:7.1f} s  CPU busy {run.cpu_busy_s:6.1f} s  "
              f"load before {run.load_before:.2f}")  # fmt: skip
    labels = sorted(
        {k for r in runs for k in r.cpu}, key=lambda k: -max(r.cpu.get(k, 0) for r in runs)
    )
    print("\nCPU seconds by component  " + "".join(f"{r.label:>14}" for r in runs))
    for label in labels:
        print(f"{label[:25]:25} " + "".join(f"{r.cpu.get(label, 0.0):14.1f}" for r in runs))
    ours = [sum(v for k, v in r.cpu.items() if not k.startswith("others")) for r in runs]
    print(f"{'all of the bench':25} " + "".join(f"{v:14.1f}" for v in ours))
    print()
    one = [r.wall for r in runs if r.shards == 1]
    two = [r.wall for r in runs if r.shards == 2]
    if one and two:
        w1, w2 = statistics.median(one), statistics.median(two)
        ratio = w2 / w1
        verdict = "PASS" if ratio <= GOAL else "FAIL"
        print(f"1 shard: {', '.join(f'{w:.1f}' for w in one)} s (median {w1:.1f}); "
              f"2 shards: {', '.join(f'{w:.1f}' for w in two)} s (median {w2:.1f})")  # fmt: skip
        print(f"ratio 2 shards / 1 shard = {ratio:.3f}: {verdict} (goal <= {GOAL})")
        best = min(two) / min(one)
        print(f"ratio of the best walls = {best:.3f}")
    if args.keep:
        print(f"kept {root}")
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


SNAPSHOT_ENV = "BENCH_SHARDS_SNAPSHOT"


def snapshot_and_reexec() -> None:
    """Copy the checkout (tracked and untracked files, not ignored ones) to a temporary folder
    and run this bench from there, with PYTHONPATH putting the copy before the editable install:
    the CLI, the workers' flow runs (the deployment's working directory is the copy) and the
    embedded services all import the copied code."""
    import shutil

    repo = HERE.parent
    root = Path(tempfile.mkdtemp(prefix="img2svg-bench-shards-")).resolve()
    copy = root / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=repo, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    digest = hashlib.sha256()
    for name in sorted(n for n in listed if n):
        source = repo / name
        if not source.is_file():
            continue  # deleted but still tracked
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy / name)
        digest.update(name.encode() + b"\0" + source.read_bytes())
    head = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--short"], cwd=repo, capture_output=True, text=True
    ).stdout.splitlines()
    print(f"code: {repo} at {head[:90]}")
    print(f"      + {len(changed)} uncommitted paths; tree sha256 {digest.hexdigest()[:16]}")
    sys.stdout.flush()
    env = {
        **os.environ,
        SNAPSHOT_ENV: str(root),
        "PYTHONPATH": os.pathsep.join([str(copy), str(copy / "src")]),
    }
    script = copy / "bench" / "shards.py"
    os.execve(sys.executable, [sys.executable, str(script), *sys.argv[1:]], env)


def wait_workers(stack: PrefectStack, n: int, timeout_s: float = 120.0) -> list[str]:
    async def online(client: Any) -> list[str]:
        workers = await client.read_workers_for_work_pool(POOL)
        return sorted(w.name for w in workers if str(w.status).endswith("ONLINE"))

    deadline = time.monotonic() + timeout_s
    while True:
        names = stack.call(online)
        if len(names) >= n or time.monotonic() > deadline:
            return names
        time.sleep(0.5)


if __name__ == "__main__":
    main()
