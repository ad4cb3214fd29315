"""/metrics exposes room, command and A2E call counters in Prometheus' text format (bridge in-process)."""

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import create_room

pytestmark = pytest.mark.in_process


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_rooms_commands_and_a2e_calls(bridge: Any) -> None:
    before = samples((await bridge.http.get("/metrics")).text)
    room = await create_room(bridge, expire_seconds=60)
    assert (await bridge.http.post(f"/v1/rooms/{room['id']}/speak", json={"text": "Hi."})).status_code == 200
    live = samples((await bridge.http.get("/metrics")).text)
    assert live[("a2e_bridge_rooms_live", ())] == 1
    await bridge.http.delete(f"/v1/rooms/{room['id']}")
    after = samples((await bridge.http.get("/metrics")).text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("a2e_bridge_rooms_opened_total") == 1
    assert grew("a2e_bridge_rooms_closed_total", reason="client") == 1
    assert grew("a2e_bridge_commands_total", kind="speak", outcome="ok") == 1
    assert grew("a2e_bridge_a2e_requests_total", operation="agora_token", outcome="ok") == 1
    assert grew("a2e_bridge_a2e_requests_total", operation="leave", outcome="ok") == 1
    assert after[("a2e_bridge_rooms_live", ())] == 0
    assert room["channel"] not in (await bridge.http.get("/metrics")).text  # no per-room labels
