"""Answer forewarm warm-up pings in Python Lambda handlers.

Use ``@warmer`` on ``def handler(event, context)``. A ping never reaches the
handler: the decorator holds the sandbox for the ping's delay, so that the
controller's concurrent pings land on distinct sandboxes, and answers with the
sandbox's identity (the forewarm README's "The wire format"). Every other event is
passed to the handler untouched.

The rules mirror the Rust shim (``src/protocol.rs``); both are tested against
the same vectors (``tests/fixtures/protocol_vectors.json``).
"""

import functools
import json
import logging
import math
import os
import sys
import time
import uuid

__all__ = ["warmer", "classify", "effective_delay_ms", "cold_start_emf", "PROTOCOL_VERSION"]

PROTOCOL_VERSION = 1
#: Longest hold accepted, in ms: far above any overlap the controller needs.
MAX_DELAY_MS = 10_000
#: Time kept in hand before the invocation's deadline, so the reply gets out.
DEADLINE_SAFETY_MS = 100
#: Hold for ``{"warmer": true}`` without a delay: the seed decorator's 0.3 s.
SEED_DEFAULT_DELAY_MS = 300
#: Hold for lambda-warmer fan-out pings: its documented 75 ms default.
LAMBDA_WARMER_DELAY_MS = 75
#: Hold for serverless-plugin-warmup pings: its README's suggested 25 ms sleep.
PLUGIN_WARMUP_DELAY_MS = 25

#: Client-context key ``forewarm probe`` sets on its real events (never in the event).
PROBE_CONTEXT_KEY = "forewarm-probe"
#: Start of the log line naming the sandbox, printed for a probed event.
PROBE_LINE_PREFIX = "forewarm-probe sandbox="

_log = logging.getLogger("forewarm")


def _now_ms():
    return int(time.time() * 1000)


def _process_start_ms():
    """When this process started (epoch ms), from Linux's /proc; None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        ticks = int(stat[stat.rindex(")") + 1:].split()[19])
        with open("/proc/stat") as f:
            btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
        return btime * 1000 + ticks * 10  # USER_HZ is 100 in the kernel's user ABI
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class _Sandbox:
    """What one sandbox (one Python process) knows about itself."""

    def __init__(self):
        now = _now_ms()
        start = _process_start_ms()
        self.instance = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME") or "local-" + uuid.uuid4().hex[:16]
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.init_ms = max(0, now - start) if start is not None else 0
        self.touched = False
        self.served = 0
        self.last_real_ms = None

    def report(self, cold, started_ms):
        return {
            "forewarm": {
                "v": PROTOCOL_VERSION,
                "instance": self.instance,
                "cold": cold,
                "init_ms": self.init_ms,
                "started_ms": started_ms,
                "served": self.served,
                "last_real_ms": self.last_real_ms,
            }
        }


_SANDBOX = _Sandbox()


def _is_number(v):
    # bool is an int subclass in Python, but `true` is not a number in JSON.
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def classify(event):
    """Return ``None`` for a real event, else a dict describing the ping.

    The dict has ``marker`` (forewarm, seed, lambda-warmer, plugin-warmup),
    ``delay_ms`` (already within 0..MAX_DELAY_MS) and ``warning`` (text or None).
    Only top-level keys of a dict count: a marker inside a body is a real event.
    """
    if not isinstance(event, dict):
        return None
    if event.get("warmer") is True:
        if isinstance(event.get("forewarm"), dict):
            marker, default = "forewarm", SEED_DEFAULT_DELAY_MS
        elif "__WARMER_INVOCATION__" in event:
            marker, default = "lambda-warmer", LAMBDA_WARMER_DELAY_MS
        else:
            marker, default = "seed", SEED_DEFAULT_DELAY_MS
    elif event.get("source") == "serverless-plugin-warmup":
        marker, default = "plugin-warmup", PLUGIN_WARMUP_DELAY_MS
    else:
        return None

    delay = event.get("delay")
    warning = None
    if delay is None:
        delay_ms = default
    elif not _is_number(delay) or (isinstance(delay, float) and math.isnan(delay)):
        delay_ms, warning = 0, "non-numeric delay %s treated as 0" % json.dumps(delay)
    elif delay < 0:
        delay_ms, warning = 0, "negative delay %s s treated as 0" % delay
    elif delay * 1000 > MAX_DELAY_MS:
        delay_ms, warning = MAX_DELAY_MS, "delay %s s clamped to %d ms" % (delay, MAX_DELAY_MS)
    else:
        delay_ms = int(math.floor(delay * 1000 + 0.5))
    return {"marker": marker, "delay_ms": delay_ms, "warning": warning}


#: The farthest a real invocation's deadline can be: Lambda's longest timeout.
MAX_INVOCATION_MS = 15 * 60_000


def effective_delay_ms(requested_ms, remaining_ms):
    """The hold actually applied: the request, limited by the time left.

    ``remaining_ms`` is None when unknown (no context). A known deadline with
    no time left means no hold: an invocation that outlasts its deadline is
    killed, and its sandbox with it. A remaining time beyond 15 minutes
    either way is an emulator's placeholder, and counts as unknown. The same
    rule as the Rust shim: the shared vectors' ``holds``.
    """
    if remaining_ms is None or abs(remaining_ms) > MAX_INVOCATION_MS:
        cap = MAX_DELAY_MS
    else:
        cap = max(0, remaining_ms - DEADLINE_SAFETY_MS)
    return max(0, min(requested_ms, cap, MAX_DELAY_MS))


def cold_start_emf(function_name, timestamp_ms):
    """One CloudWatch Embedded Metric Format line for ``Forewarm/ColdStart``."""
    return json.dumps(
        {
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "Forewarm",
                        "Dimensions": [["FunctionName"]],
                        "Metrics": [{"Name": "ColdStart", "Unit": "Count"}],
                    }
                ],
            },
            "FunctionName": function_name,
            "ColdStart": 1,
        },
        separators=(",", ":"),
    )


def _remaining_ms(context):
    get = getattr(context, "get_remaining_time_in_millis", None)
    if get is None:
        return None
    try:
        return int(get())
    except Exception:  # a foreign context object must never break a ping
        # Nothing says how long the invocation may run: no hold at all
        # rather than risk outlasting its deadline.
        return 0


def _probed(context):
    """True when ``forewarm probe`` sent this event (a client-context key)."""
    cc = getattr(context, "client_context", None)
    custom = cc.get("custom") if isinstance(cc, dict) else getattr(cc, "custom", None)
    return isinstance(custom, dict) and PROBE_CONTEXT_KEY in custom


def warmer(handler):
    """Decorate ``handler(event, context)`` so forewarm pings never reach it."""

    @functools.wraps(handler)
    def wrapper(event, context=None, *args, **kwargs):
        started_ms = _now_ms()
        first = not _SANDBOX.touched
        _SANDBOX.touched = True
        ping = classify(event)
        if ping is not None:
            if ping["warning"]:
                _log.warning("forewarm: odd ping: %s", ping["warning"])
            hold = effective_delay_ms(ping["delay_ms"], _remaining_ms(context))
            reply = _SANDBOX.report(first, started_ms)
            _log.info("forewarm: ping instance=%s cold=%s hold_ms=%d", _SANDBOX.instance, first, hold)
            time.sleep(hold / 1000.0)
            return reply
        if _probed(context):
            # The Invoke's log tail then names the sandbox that served it.
            sys.stdout.write(PROBE_LINE_PREFIX + _SANDBOX.instance + "\n")
            sys.stdout.flush()
        if first:
            sys.stdout.write(cold_start_emf(_SANDBOX.function_name, started_ms) + "\n")
            sys.stdout.flush()
        _SANDBOX.served += 1
        _SANDBOX.last_real_ms = started_ms
        return handler(event, context, *args, **kwargs)

    return wrapper
