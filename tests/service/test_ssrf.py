"""The service never fetches an image URL that points into a private network, however spelled.

Every target is refused before any connection is made (the guard checks the resolved address),
so nothing here sends traffic anywhere but the service on loopback. Redirects into a private
network, each hop checked and pinned, are tested at the guard itself (tests/net/test_fetch.py).
"""

from __future__ import annotations

import httpx
import pytest

from img2svg.api.codes import ErrorCode
from tests.helpers import SUBMIT

FORMS = [
    "http://127.0.0.1/x.png",  # loopback
    "http://localhost/x.png",
    "http://10.0.0.1/x.png",  # private
    "http://172.16.0.1/x.png",
    "http://192.168.1.1/x.png",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://[fd00:ec2::254]/x.png",  # AWS metadata over IPv6
    "http://[::1]/x.png",
    "http://[::ffff:127.0.0.1]/x.png",  # IPv4-mapped
    "http://[64:ff9b::7f00:1]/x.png",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::]/x.png",  # 6to4 of 127.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x.png",  # Teredo, client 127.0.0.1
    "http://2130706433/x.png",  # decimal 127.0.0.1
    "http://0x7f000001/x.png",  # hex
    "http://0177.0.0.1/x.png",  # octal
    "http://0x7f.1/x.png",  # mixed, shortened
    "http://127.1/x.png",  # shortened
    "http://0/x.png",  # 0.0.0.0
]


@pytest.fixture(scope="module")
def guarded() -> object:
    """One service without --allow-private-urls for every case."""
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from img2svg.service.embedded import EmbeddedService

    with (
        TemporaryDirectory() as tmp,
        EmbeddedService(Path(tmp) / "svc", extra_args=["--workers", "1"]) as service,
    ):
        yield service


@pytest.mark.parametrize("target", FORMS)
def test_every_spelling_of_a_private_address_is_refused(guarded, target: str) -> None:
    answer = httpx.post(
        guarded.url + SUBMIT,
        json={"image": target, "mode": "fast"},
        headers={"X-accept-language": "en"},
        timeout=30,
    ).json()
    assert answer["code"] == ErrorCode.IMAGE_URL_REFUSED, answer
