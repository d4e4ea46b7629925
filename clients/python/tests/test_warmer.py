"""Scenario tests for the forewarm Python decorator."""

import json
import os
import pathlib

import pytest

import forewarm

VECTORS = json.loads(
    (pathlib.Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "protocol_vectors.json").read_text()
)
HOLDS = VECTORS["holds"]
VECTORS = VECTORS["vectors"]


class Context:
    """A Lambda context with a fixed remaining time."""

    def __init__(self, remaining_ms=30_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self):
        return self.remaining_ms


@pytest.fixture
def fresh_sandbox(monkeypatch):
    """Every test starts in a new sandbox, and sleeping is recorded, not done."""
    monkeypatch.setattr(forewarm, "_SANDBOX", forewarm._Sandbox())
    slept = []
    monkeypatch.setattr(forewarm.time, "sleep", lambda s: slept.append(s))
    return slept


def counting_handler():
    calls = []

    @forewarm.warmer
    def handler(event, context):
        calls.append(event)
        return {"handled": event}

    return handler, calls


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_classifier_agrees_with_the_shared_vectors(vector):
    # A raw vector is parsed as the Lambda runtime parses an event: last
    # duplicate key wins, integers of any length, floats beyond range inf.
    event = json.loads(vector["raw"]) if "raw" in vector else vector["event"]
    got = forewarm.classify(event)
    if vector["kind"] == "real":
        assert got is None
    else:
        assert got["marker"] == vector["marker"]
        assert got["delay_ms"] == vector["delay_ms"]
        assert (got["warning"] is not None) == vector["warn"]


class Raising:
    """A context whose remaining time cannot be read."""

    def get_remaining_time_in_millis(self):
        raise RuntimeError("no")


@pytest.mark.parametrize("vector", HOLDS, ids=[v["name"] for v in HOLDS])
def test_holds_agree_with_the_shared_vectors(vector, fresh_sandbox):
    remaining = vector["remaining_ms"]
    context = Raising() if remaining == "raises" else (None if remaining is None else Context(remaining))
    handler, calls = counting_handler()
    handler({"warmer": True, "delay": vector["requested_ms"] / 1000}, context)
    assert calls == []
    assert fresh_sandbox == [vector["hold_ms"] / 1000]


def test_a_ping_never_reaches_the_handler_and_holds_its_delay(fresh_sandbox):
    handler, calls = counting_handler()
    reply = handler({"warmer": True, "delay": 0.4, "forewarm": {"v": 1, "run": "t", "seq": 0, "of": 1}}, Context())
    assert calls == []
    assert fresh_sandbox == [0.4]
    body = reply["forewarm"]
    assert body["cold"] is True and body["served"] == 0 and body["last_real_ms"] is None
    assert body["v"] == 1 and body["instance"]
    again = handler({"warmer": True, "delay": 0}, Context())["forewarm"]
    assert again["cold"] is False and again["instance"] == body["instance"]


def test_the_hold_is_clamped_to_the_remaining_time_and_ten_seconds(fresh_sandbox):
    handler, _ = counting_handler()
    handler({"warmer": True, "delay": 9}, Context(remaining_ms=1_000))
    handler({"warmer": True, "delay": 1e9}, Context(remaining_ms=900_000))
    handler({"warmer": True, "delay": 5}, None)
    assert fresh_sandbox == [0.9, 10.0, 5.0]


def test_bad_delays_are_logged_not_fatal(fresh_sandbox, caplog):
    handler, calls = counting_handler()
    for bad in (-1, "soon", {"x": 1}, True):
        handler({"warmer": True, "delay": bad}, Context())
    assert calls == [] and fresh_sandbox == [0, 0, 0, 0]
    assert sum("odd ping" in r.message for r in caplog.records) == 4


def test_real_events_pass_through_and_the_first_reports_a_cold_start(fresh_sandbox, capsys):
    handler, calls = counting_handler()
    event = {"httpMethod": "POST", "body": '{"warmer": true}'}
    assert handler(event, Context()) == {"handled": event}
    assert handler([1, 2], Context()) == {"handled": [1, 2]}
    assert handler("raw", Context()) == {"handled": "raw"}
    assert calls == [event, [1, 2], "raw"]
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
    assert len(lines) == 1, "only the sandbox's first real event was cold"
    emf = json.loads(lines[0])
    assert emf["ColdStart"] == 1
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Forewarm"
    reply = handler({"warmer": True}, Context())["forewarm"]
    assert reply["served"] == 3 and reply["last_real_ms"] is not None


def test_a_probed_event_reaches_the_handler_and_the_log_names_the_sandbox(fresh_sandbox, capsys):
    class ClientContext:
        custom = {"forewarm-probe": "1"}

    class Probed(Context):
        client_context = ClientContext()

    handler, calls = counting_handler()
    assert handler({"order": 7}, Probed()) == {"handled": {"order": 7}}
    assert handler({"order": 8}, Context()) == {"handled": {"order": 8}}
    assert calls == [{"order": 7}, {"order": 8}]
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("forewarm-probe")]
    assert lines == ["forewarm-probe sandbox=" + forewarm._SANDBOX.instance], "only when asked"


def test_a_sandbox_first_touched_by_a_ping_reports_no_cold_start(fresh_sandbox, capsys):
    handler, _ = counting_handler()
    handler({"warmer": True, "delay": 0}, Context())
    handler({"path": "/"}, Context())
    assert "ColdStart" not in capsys.readouterr().out


def test_the_instance_is_the_log_stream_when_there_is_one(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/26/[$LATEST]abc")
    assert forewarm._Sandbox().instance == "2026/11/26/[$LATEST]abc"
    monkeypatch.delenv("AWS_LAMBDA_LOG_STREAM_NAME")
    a, b = forewarm._Sandbox().instance, forewarm._Sandbox().instance
    assert a.startswith("local-") and a != b


def test_a_broken_context_does_not_break_a_ping(fresh_sandbox):
    handler, _ = counting_handler()
    assert handler({"warmer": True, "delay": 0.1}, Raising())["forewarm"]["cold"]
    assert fresh_sandbox == [0.0], "no hold when the time left cannot be known"


def test_init_time_is_measured_on_linux():
    if os.path.exists("/proc/self/stat"):
        assert forewarm._process_start_ms() <= forewarm._now_ms()
