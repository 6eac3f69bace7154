"""Missed calls through the whole agent: posted while it is down, shown after it starts, deleted
on the backend only once the user marked them seen, and remembered across a restart."""

from __future__ import annotations

import httpx

from tests.app.test_end_to_end import build_agent, call, connected, post


def deferred_ids(server) -> list[str]:
    resp = httpx.get(f"{server.base_url}/notifications/deferred",
                     headers={"Authorization": f"Bearer {server.mint_token('JAS')}"})
    resp.raise_for_status()
    return [item["id"] for item in resp.json()["_embedded"]]


def test_missed_call_posted_while_down_shows_after_start_and_is_deleted_only_when_seen(
    qtbot, mock_server, tmp_path
):
    assert post(mock_server, call("missedCall", "m-1", ["JAS"])).status_code == 202
    assert len(deferred_ids(mock_server)) == 1

    agent = build_agent(mock_server, tmp_path, with_tray=True)
    agent.start()
    try:
        qtbot.waitUntil(lambda: agent.missed.unseen_count == 1, timeout=10_000)
        [missed] = agent.missed.calls
        assert missed.call_id == "m-1" and missed.caller == "07123 456789"
        assert (tmp_path / "data" / "missed.json").is_file()
        assert len(deferred_ids(mock_server)) == 1  # not seen yet: still on the backend

        agent.tray.missed_seen_requested.emit()  # "Mark all seen" in the tray menu
        assert agent.missed.unseen_count == 0
        qtbot.waitUntil(lambda: deferred_ids(mock_server) == [], timeout=10_000)
        qtbot.waitUntil(lambda: agent.missed.pending_deletes() == [], timeout=5_000)
    finally:
        agent.shutdown()

    again = build_agent(mock_server, tmp_path, with_tray=False)
    again.start()
    try:
        qtbot.waitUntil(lambda: connected(again), timeout=10_000)
        assert [c.call_id for c in again.missed.calls] == ["m-1"]
        assert again.missed.unseen_count == 0
    finally:
        again.shutdown()
