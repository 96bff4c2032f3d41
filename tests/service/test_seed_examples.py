"""The Python examples of HiDream's original document run unchanged against `img2svg serve`.

They are taken from a verbatim copy of the document at test time; only what cannot work on a
machine without network is swapped: the host, the token placeholder, the sample image's URL and
the sample task id.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import defusedxml.ElementTree as ET
import httpx

from img2svg.service.embedded import EmbeddedService
from tests.helpers import LoopbackServer, Route, logo_png, wait_for

SEED = Path(__file__).parents[1] / "data" / "img2svg-async-api.zh.txt"
SHARED_SEED = Path(__file__).parents[3] / "shared" / "seed" / "img2svg-async-api.zh.txt"


def _python_examples() -> list[str]:
    text = SEED.read_text(encoding="utf-8")
    blocks = re.findall(r"Python示例\n(.*?)\n4\. 返回参数", text, flags=re.S)
    assert len(blocks) == 2, "the seed document should hold two Python examples"
    return blocks


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_vendored_seed_matches_shared_copy() -> None:
    if SHARED_SEED.exists():
        assert SEED.read_bytes() == SHARED_SEED.read_bytes()


def test_seed_python_examples(service: EmbeddedService, web: LoopbackServer) -> None:
    image_url = web.add("/e/5d/sample.png", Route(body=logo_png(64), content_type="image/png"))
    submit_code, result_code = _python_examples()

    submit_code = submit_code.replace("https://www.hidreamai.com", service.url)
    submit_code = submit_code.replace("<token>", '"local-token"')
    submit_code = re.sub(r"https://fuss10\.elemecdn\.com/\S+?\.jpeg", image_url, submit_code)
    task_id = _run(submit_code).strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", task_id), task_id

    result_code = result_code.replace("https://www.hidreamai.com", service.url)
    result_code = result_code.replace("<token>", '"local-token"')
    result_code = result_code.replace("9d75b95c-d6e7-11ee-9569-52cbc25497eb", task_id)
    statuses: list[str] = []

    def finished() -> str | None:
        out = _run(result_code)
        match = re.search(r"task_status: (\d), task_completion: ([\d.]+), image_url: (\S*)", out)
        assert match, out
        statuses.append(match.group(1))
        return match.group(3) if match.group(1) == "1" else None

    svg_url = wait_for(finished, timeout_s=60, interval_s=0.2)
    assert statuses[-1] == "1"
    svg = httpx.get(svg_url)
    assert svg.status_code == 200
    assert ET.fromstring(svg.content).tag.endswith("svg")
