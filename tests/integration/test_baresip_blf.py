"""baresip 1.0 and the dialog event package: what the server's subscription to a phone meets.

With ``server.subscriptions.watch_phones`` on, the server SUBSCRIBEs
(``Event: dialog``) to each registered member line's phone. baresip 1.0.0
serves no dialog package and does not even answer such a SUBSCRIBE (it
drops it: no 489, no 405; it answers OPTIONS, MESSAGE and NOTIFY). This
documents that, and that the server then gives up on timer F (64*T1: 32 s by
default, 6.4 s in this test, 408)
and backs off (60 s, doubling up to ``watch_retry``) instead of asking
again at once (docs/sip.md, "Which phones report their calls").
Run with:  pytest tests/integration/test_baresip_blf.py
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import (
    DOMAIN,
    Baresip,
    HuntgroupServer,
    group,
    server_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

LINE = "0102030405"
PASSWORD = "s3cret"
PILOT = "0140000000"


def test_baresip_ignores_the_dialog_package_and_is_left_alone(
    tmp_path: Path,
    ports: PortAllocator,
    baresips: list[Baresip],
    start_server: Callable[[dict[str, Any]], HuntgroupServer],
) -> None:
    ha1 = hashlib.md5(f"{LINE}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
    config = server_config(
        ports,
        lines=[{"number": LINE, "name": "baresip", "ha1_md5": ha1}],
        groups=[group("G", PILOT, "linear", [LINE])],
    )
    config["server"]["subscriptions"] = {"watch_phones": True, "watch_retry": 3600}
    config["server"]["timers"] = {"t1": 0.1}  # timer F = 64*T1: 6.4 s instead of 32 s
    server = start_server(config)
    phone = Baresip(
        workdir=tmp_path / "baresip",
        number=LINE,
        password=PASSWORD,
        registrar_port=server.port,
        sip_port=ports.port(),
    )
    baresips.append(phone.start())
    phone.wait_registered()
    server.wait_for_log(rf"line {LINE}: subscribing to its phone's dialog events")
    server.wait_for_log(
        rf"line {LINE}: the phone's dialog events are not watched \(408\); "
        r"asked again in 60 s",
        deadline=30,
    )
    assert server.log().count("subscribing to its phone's dialog events") == 1
