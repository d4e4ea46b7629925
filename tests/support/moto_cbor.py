"""moto_server with a CBOR front door, for the integration tests.

aws-sdk-cloudwatch (1.100 and later) speaks Smithy RPC v2 CBOR, which moto
does not; this WSGI wrapper turns such requests into moto's awsJson1_0 form
and the answers back into CBOR (timestamps as tag 1), using botocore's model
to find timestamp and blob fields. Everything else passes straight to moto.
It can also stand in for the Lambda Invoke API: with --invoke-upstream URL,
`POST /2015-03-31/functions/NAME/invocations` is forwarded there (to `cargo
lambda watch`), while moto answers the control plane (GetFunctionConfiguration,
GetFunctionConcurrency), so one endpoint serves every client. A handler error,
which cargo-lambda answers with HTTP 500, is turned into what Lambda answers:
200 with `X-Amz-Function-Error: Unhandled`.
It can inject faults, for the fault tests: `POST /__faults` with JSON
{"rate": 0.3, "seed": 7} makes that share of the requests that follow (any
service) fail one of several ways, some before the request is applied and
some after (see FAULTS); {"rate": 0} stops it. `GET /__faults` answers what
was injected, by kind. And it bills as the services do (see USAGE):
DynamoDB's consumed capacity by item size, CloudWatch's metrics requested.
Usage: python moto_cbor.py --host 127.0.0.1 --port 4566 [--invoke-upstream http://127.0.0.1:9000]
"""
import argparse
import base64
import datetime as dt
import gzip
import io
import json
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import zlib

import botocore.session
import cbor2
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

from moto.cloudwatch.models import CloudWatchBackend

UTC = dt.timezone.utc

# CloudWatch identifies a metric by namespace, name and its exact dimensions:
# a query naming no dimension reads only the series that has none (an
# account's series, such as Lambda's UnreservedConcurrentExecutions), never
# the per-function series of the same name. moto's get_metric_data takes
# every series of the name when a query names no dimension; here such
# queries run over the dimensionless datapoints only (one call at a time,
# since the view is swapped on the backend for the call).
_GET_METRIC_DATA = CloudWatchBackend.get_metric_data
_EXACT_LOCK = threading.Lock()


def exact_get_metric_data(self, queries, start_time, end_time, *args, **kwargs):
    bare = [q for q in queries if "MetricStat" in q and not q["MetricStat"]["Metric"].get("Dimensions")]
    rest = [q for q in queries if not any(q is b for b in bare)]
    with _EXACT_LOCK:
        results = _GET_METRIC_DATA(self, rest, start_time, end_time, *args, **kwargs) if rest else []
        if bare:
            everything = self.get_all_metrics
            self.get_all_metrics = lambda: [md for md in everything() if not md.dimensions]
            try:
                results = results + _GET_METRIC_DATA(self, bare, start_time, end_time, *args, **kwargs)
            finally:
                del self.get_all_metrics
    return results


CloudWatchBackend.get_metric_data = exact_get_metric_data
SERVICES = {"GraniteServiceVersion20100801": "cloudwatch"}
MODELS = {k: botocore.session.get_session().get_service_model(v) for k, v in SERVICES.items()}


def convert(shape, value, outgoing):
    """outgoing=True: JSON values to CBOR values; False: the reverse."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        return {k: convert(shape.members.get(k), v, outgoing) for k, v in value.items()}
    if kind == "list":
        return [convert(shape.member, v, outgoing) for v in value]
    if kind == "map":
        return {k: convert(shape.value, v, outgoing) for k, v in value.items()}
    if kind == "timestamp":
        if not outgoing:
            return value.timestamp() if isinstance(value, dt.datetime) else value
        if isinstance(value, (int, float)):
            return dt.datetime.fromtimestamp(value, UTC)
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if kind == "blob":
        return base64.b64decode(value) if outgoing else base64.b64encode(value).decode()
    return value


def request_body(environ):
    """The whole request body, read from the socket once. Every answer reads
    it first: after answering, werkzeug drains what is left with a blocking
    read to end of stream, so an unread body that arrived in its own segment
    would hold the connection open until the client gives up on it. What is
    read is put back as `wsgi.input` for the layers below, and a second
    call returns it again: a fault that answers after the request was
    applied must not wait on the socket for a body already taken."""
    cached = environ.get("forewarm.body")
    if cached is not None and environ["wsgi.input"] is cached[0]:
        return cached[1]
    raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    replay = io.BytesIO(raw)
    environ["wsgi.input"] = replay
    environ["forewarm.body"] = (replay, raw)
    return raw


INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


def forward_invoke(upstream, environ, start_response):
    body = request_body(environ)
    req = urllib.request.Request(upstream + environ["PATH_INFO"], data=body, method="POST")
    for h in ("HTTP_X_AMZ_INVOCATION_TYPE", "HTTP_X_AMZ_CLIENT_CONTEXT", "HTTP_X_AMZ_LOG_TYPE"):
        if h in environ:
            req.add_header(h[5:].replace("_", "-").title(), environ[h])
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            status, payload, error = resp.status, resp.read(), None
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
        error = "Unhandled" if e.code == 500 else None
    if error:
        status = 200
    if status == 404:
        # cargo-lambda answers unknown names with a problem document; Lambda
        # with ResourceNotFoundException.
        payload = json.dumps({"Type": "User", "message": "Function not found"}).encode()
        headers = [("Content-Type", "application/json"), ("X-Amzn-ErrorType", "ResourceNotFoundException")]
    else:
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
    if error:
        headers.append(("X-Amz-Function-Error", error))
    start_response(f"{status} {'OK' if status == 200 else 'Error'}", headers + [("Content-Length", str(len(payload)))])
    return [payload]


# moto's threaded server runs each request on its own thread, and its
# DynamoDB backend checks a ConditionExpression and applies the write in two
# steps without a lock: two conditional UpdateItems racing for one lease can
# both win. DynamoDB applies each conditional write atomically, so the front
# door serialises DynamoDB requests (they take milliseconds); everything else,
# Invoke forwarding above all, stays concurrent.
DYNAMODB_LOCK = threading.Lock()


def serialised(app, environ, start_response):
    with DYNAMODB_LOCK:
        return metered(app, environ, start_response)


# What DynamoDB bills, which moto does not model: it answers a constant unit
# on some calls and nothing on others, whatever the items' sizes. The front
# door sizes items by DynamoDB's published rules (attribute names and values;
# a number one byte per two significant digits plus one; a list or map 3
# bytes plus 1 per element) and answers what the service would: a write one
# unit per KB of the larger of the item before and after, a GetItem one per
# 4 KB (half if eventually consistent; a missing item still costs the
# minimum), a Scan or Query one per 4 KB of the items it read, page by page.
# `GET /__usage` answers the running totals, with CloudWatch's metrics
# requested and ListMetrics requests; `POST /__usage` zeroes them.
USAGE = {"read_units": 0.0, "write_units": 0.0, "metrics_requested": 0, "list_requests": 0, "calls": []}
USAGE_LOCK = threading.Lock()
WRITES = ("PutItem", "UpdateItem", "DeleteItem")
READS = ("GetItem", "Scan", "Query")


def number_size(text):
    digits = "".join(c for c in str(text).split("e")[0].split("E")[0] if c.isdigit()).strip("0")
    return (max(len(digits), 1) + 1) // 2 + 1


def value_size(v):
    (kind, x), = v.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        return number_size(x)
    if kind == "B":
        return len(base64.b64decode(x))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(e.encode()) for e in x)
    if kind == "NS":
        return sum(number_size(e) for e in x)
    if kind == "BS":
        return sum(len(base64.b64decode(e)) for e in x)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in x.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item):
    return sum(len(k.encode()) + value_size(v) for k, v in (item or {}).items())


def call(app, environ, target, body):
    """One request to moto itself; (status, headers, decoded body)."""
    raw = json.dumps(body).encode()
    env = dict(environ)
    env.update(HTTP_X_AMZ_TARGET=target, CONTENT_LENGTH=str(len(raw)), **{"wsgi.input": io.BytesIO(raw)})
    got = {}
    out = b"".join(app(env, lambda status, headers, exc=None: got.update(status=status, headers=headers)))
    return got["status"], got["headers"], (json.loads(out) if out.strip() else {})


def stored_size(app, environ, table, key):
    status, _, doc = call(app, environ, "DynamoDB_20120810.GetItem",
                          {"TableName": table, "Key": key, "ConsistentRead": True})
    return item_size(doc.get("Item")) if status.startswith("2") else 0


def metered(app, environ, start_response):
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    op = target.split(".")[-1]
    raw = request_body(environ)
    body = json.loads(raw) if raw.strip() else {}
    wanted = body.get("ReturnConsumedCapacity", "NONE")
    if op not in WRITES + READS:
        environ["wsgi.input"] = io.BytesIO(raw)
        return list(app(environ, start_response))
    table = body.get("TableName", "")
    key = body.get("Key") or {k: body.get("Item", {}).get(k) for k in ("pk", "sk")}
    before = stored_size(app, environ, table, key) if op in WRITES else 0
    status, headers, doc = call(app, environ, target, body)
    if status.startswith("2"):
        if op in WRITES:
            size = (before, stored_size(app, environ, table, key))
            units, kind = float(-(-max(*size, 1) // 1024)), "write_units"
        else:
            # Billed on the whole items read, whatever a projection returns.
            if op == "GetItem":
                projected = "ProjectionExpression" in body or "AttributesToGet" in body
                size = stored_size(app, environ, table, key) if projected else item_size(doc.get("Item"))
            else:
                size = sum(item_size(i) for i in doc.get("Items", []))
            units = max(1, -(-size // 4096)) * (1.0 if body.get("ConsistentRead") else 0.5)
            kind = "read_units"
        with USAGE_LOCK:
            USAGE[kind] += units
            USAGE["calls"].append({"op": op, "key": key, "bytes": size, kind: units})
        if wanted in ("TOTAL", "INDEXES"):
            doc["ConsumedCapacity"] = {"TableName": table, "CapacityUnits": float(units)}
            if wanted == "INDEXES":
                doc["ConsumedCapacity"]["Table"] = {"CapacityUnits": float(units)}
        else:
            doc.pop("ConsumedCapacity", None)
    out = json.dumps(doc).encode()
    skip = ("content-length", "x-amz-crc32")
    headers = [(k, v) for k, v in headers if k.lower() not in skip]
    start_response(status, headers + [("Content-Length", str(len(out))), ("X-Amz-Crc32", str(zlib.crc32(out)))])
    return [out]


def usage(environ, start_response):
    request_body(environ)
    with USAGE_LOCK:
        if environ["REQUEST_METHOD"] == "POST":
            USAGE.update(read_units=0.0, write_units=0.0, metrics_requested=0, list_requests=0, calls=[])
        body = json.dumps(USAGE).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# What can go wrong with a request, as the SDKs see it from AWS: a 500 or a
# throttle before anything is applied; added latency; a connection dropped
# before the request reaches the service, or after it was applied (the
# answer lost on the way back); a 500 after it was applied.
FAULTS = ("500", "throttle", "slow", "drop", "drop_after", "500_after")
FAULT = {"rate": 0.0, "rng": random.Random(0), "counts": {}}
FAULT_LOCK = threading.Lock()


def pick_fault():
    with FAULT_LOCK:
        if FAULT["rate"] <= 0 or FAULT["rng"].random() >= FAULT["rate"]:
            return None, 0.0
        kind = FAULT["rng"].choice(FAULTS)
        FAULT["counts"][kind] = FAULT["counts"].get(kind, 0) + 1
        return kind, FAULT["rng"].uniform(0.05, 0.5)


def control(environ, start_response):
    raw = request_body(environ)
    if environ["REQUEST_METHOD"] == "POST":
        doc = json.loads(raw or b"{}")
        with FAULT_LOCK:
            FAULT.update(rate=float(doc.get("rate", 0)), rng=random.Random(doc.get("seed", 0)))
    with FAULT_LOCK:
        body = json.dumps({"rate": FAULT["rate"], "injected": FAULT["counts"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def error_reply(environ, start_response, throttle):
    request_body(environ)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if throttle and target.startswith("DynamoDB_"):
        status, code = "400 Bad Request", "com.amazonaws.dynamodb.v20120810#ThrottlingException"
    elif throttle and "/functions/" in environ.get("PATH_INFO", ""):
        status, code = "429 Too Many Requests", "TooManyRequestsException"
    elif throttle:
        status, code = "503 Service Unavailable", "ServiceUnavailable"
    else:
        status, code = "500 Internal Server Error", "InternalServerError"
    body = json.dumps({"__type": code, "message": "injected fault"}).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.0"), ("X-Amzn-ErrorType", code),
                            ("Content-Length", str(len(body)))])
    return [body]


def drop(environ):
    """Closes the connection with no answer."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    return []


def faulty(inner):
    def wsgi(environ, start_response):
        if environ.get("PATH_INFO") == "/__faults":
            return control(environ, start_response)
        if environ.get("PATH_INFO") == "/__usage":
            return usage(environ, start_response)
        kind, delay = pick_fault()
        if kind is None:
            return inner(environ, start_response)
        if kind == "500":
            return error_reply(environ, start_response, False)
        if kind == "throttle":
            return error_reply(environ, start_response, True)
        if kind == "drop":
            return drop(environ)
        if kind == "slow":
            time.sleep(delay)
            return inner(environ, start_response)
        # Applied, then the answer is lost.
        list(inner(environ, lambda status, headers, exc=None: None))
        if kind == "drop_after":
            return drop(environ)
        return error_reply(environ, start_response, False)
    return wsgi


def front_door(app, upstream=None):
    def wsgi(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return serialised(app, environ, start_response)
        if upstream and environ.get("REQUEST_METHOD") == "POST" and INVOKE.match(environ.get("PATH_INFO", "")):
            return forward_invoke(upstream, environ, start_response)
        parts = environ.get("PATH_INFO", "").strip("/").split("/")
        if len(parts) != 4 or parts[0] != "service" or parts[2] != "operation" or parts[1] not in SERVICES:
            return app(environ, start_response)
        op = MODELS[parts[1]].operation_model(parts[3])
        raw = request_body(environ)
        if "gzip" in environ.get("HTTP_CONTENT_ENCODING", ""):
            raw = gzip.decompress(raw)  # the SDK gzips bodies of 10 KiB and more
        request = convert(op.input_shape, cbor2.loads(raw) if raw else {}, False) or {}
        # Billed as CloudWatch bills: GetMetricData per metric requested
        # (a query that computes an expression is not a metric), every other
        # request per request.
        with USAGE_LOCK:
            if parts[3] == "GetMetricData":
                USAGE["metrics_requested"] += sum(1 for q in request.get("MetricDataQueries", []) if "MetricStat" in q)
            elif parts[3] == "ListMetrics":
                USAGE["list_requests"] += 1
        body = json.dumps(request).encode()
        env = {k: v for k, v in environ.items() if k not in ("HTTP_SMITHY_PROTOCOL", "HTTP_ACCEPT", "HTTP_CONTENT_ENCODING")}
        env.update(
            PATH_INFO="/", REQUEST_URI="/", RAW_URI="/", QUERY_STRING="", CONTENT_LENGTH=str(len(body)),
            CONTENT_TYPE="application/x-amz-json-1.0", HTTP_X_AMZ_TARGET=f"{parts[1]}.{parts[3]}",
            **{"wsgi.input": io.BytesIO(body)},
        )
        got = {}
        out = b"".join(app(env, lambda status, headers, exc=None: got.update(status=status, headers=headers)))
        doc = json.loads(out) if out.strip() else {}
        if got["status"].startswith("2"):
            doc = convert(op.output_shape, doc, True) if op.output_shape else {}
        payload = cbor2.dumps(doc, datetime_as_timestamp=True, timezone=UTC)
        headers = [(k, v) for k, v in got["headers"] if k.lower() not in ("content-type", "content-length")]
        start_response(got["status"], headers + [
            ("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"), ("Content-Length", str(len(payload))),
        ])
        return [payload]
    return wsgi


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=4566)
    ap.add_argument("--invoke-upstream", default=None)
    a = ap.parse_args()
    app = faulty(front_door(DomainDispatcherApplication(create_backend_app), a.invoke_upstream))
    run_simple(a.host, a.port, app, threaded=True)
