"""Hostile frames against a real ``a2e-bridge serve`` (``scripts/ws_fuzz.py``, bounded): no traceback in
its log, no connection ended without a close frame, every frame that carries an id answered, every
connection answering its final ping. The full run (100,000 frames) is ``python scripts/ws_fuzz.py``."""

from __future__ import annotations

from pathlib import Path

from scripts.ws_fuzz import expected_id, hostile_frames, run_against_server


def test_the_frame_mix_covers_what_broke_the_bridge() -> None:
    frames = list(hostile_frames(seed=3, count=2000))
    texts = [payload for kind, payload in frames if kind == "text"]
    assert sum('"id":"\\ud8' in t or '"id":"\\udc' in t or '"id":"\\udf' in t for t in texts) > 20  # escaped lone surrogates
    assert any(len(t) > 65_536 for t in texts)  # over the frame limit
    assert any('"i' + "i" * 128 in t for t in texts)  # ids too long to echo
    assert {kind for kind, _ in frames} >= {"text", "bytes", "fragments"}
    for kind in ("speak_delta", "speak_end", "cancel"):  # the stream frames too, valid and odd
        assert sum(f'"type": "{kind}"' in t for t in texts) > 10, kind
    assert sum(expected_id(kind, payload) is not None for kind, payload in frames) > 500


def test_hostile_frames_over_eight_connections(tmp_path: Path) -> None:
    report = run_against_server(frames=3000, connections=8, seed=11, log_path=tmp_path / "server.log")
    summary = report.as_dict()
    assert report.tracebacks == 0 and report.error_lines == 0, (tmp_path / "server.log").read_text()[-4000:]
    assert report.abnormal_closes == 0, summary
    assert report.final_pings == 8, summary
    assert report.expected > 1000 and report.answered == report.expected - report.lost_to_violation, summary
    assert report.answers["error:invalid_text"] > 50 and report.answers["pong"] > 100, summary
    assert report.answers["room_state:open"] == 1  # the room survived it
    assert report.ok
