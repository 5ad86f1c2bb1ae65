"""Stand-ins for the model APIs (Anthropic, Google Gemini), run as a test container.

The model APIs cannot be reached from the test machines, so the REAL agent CLIs are
pointed at this server (ANTHROPIC_BASE_URL, GOOGLE_GEMINI_BASE_URL). It follows the
public contracts the agents use:

- Anthropic Messages API: `POST /v1/messages` (also `?beta=true`), streamed as
  Server-Sent Events (`message_start`, `content_block_start`, `content_block_delta` with
  `text_delta` or `input_json_delta`, `content_block_stop`, `message_delta`,
  `message_stop`) or answered as one JSON message; `POST /v1/messages/count_tokens`.
- Gemini API: `POST /v1beta/models/<model>:generateContent` (one JSON response; a
  request that asks for JSON with a response schema, such as the model router's, gets a
  JSON text filling the schema: `model_choice` "flash"), `:streamGenerateContent?alt=sse`
  (`data: {...}` events) and `:countTokens`.

What it answers is steered by the last user message, so a test decides it in its
prompt:

- `standin-write:<absolute path>:<word>` asks for one tool call that writes `<word>`
  and a newline to the path (Claude Code's `Write` tool; Gemini CLI's `write_file`);
  once the tool's result comes back, the answer is `ANSWER(wrote)`.
- otherwise the answer is `ANSWER(<tag>)` for the first `standin-tag:<tag>` in the last
  user message, or `ANSWER(none)`.

Every request is recorded (method, path, a few headers, the JSON body) and served back
at `GET /_standin/requests`; `POST /_standin/reset` forgets them. Other paths get a
plain JSON 404, as the real APIs give for unknown routes.

The file is also the test-side helper: `ModelAPI` starts it in a container (label
io.kuatecno.devenv.test=1) from an image with python3, on a network, and is reached at
the container's address:

    with ModelAPI.start(network="bridge") as api:
        env = {"ANTHROPIC_BASE_URL": api.url, "GOOGLE_GEMINI_BASE_URL": api.url}
        ...
        api.requests(kind="anthropic")

Run as a server: python3 model_api.py [PORT]   (standard library only).
"""

import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PORT = 8080
STANDIN_IMAGE = "devenv-test/debian:13"
TEST_LABEL = "io.kuatecno.devenv.test"
RECORDED_HEADERS = (
    "x-api-key",
    "authorization",
    "x-goog-api-key",
    "anthropic-version",
    "anthropic-beta",
    "user-agent",
)
_TAG = re.compile(r"standin-tag:([A-Za-z0-9_.-]+)")
_WRITE = re.compile(r"standin-write:(/[^\s:]+):([A-Za-z0-9_.-]+)")


# ---------------------------------------------------------------- what to answer


def _texts(value):
    """Every string found in a message's content (text blocks, tool results, parts)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("type", "role", "id", "tool_use_id", "cache_control"):
                yield from _texts(item)


def decide(last_text, tool_result_seen):
    """('write', path, word) or ('text', answer) for the last user message."""
    if tool_result_seen:
        return ("text", "ANSWER(wrote)")
    write = _WRITE.search(last_text)
    if write:
        return ("write", write.group(1), write.group(2))
    tag = _TAG.search(last_text)
    return ("text", f"ANSWER({tag.group(1) if tag else 'none'})")


# ---------------------------------------------------------------- Anthropic


def anthropic_decision(body):
    messages = body.get("messages") or []
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    content = last.get("content")
    tool_result = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    return decide("\n".join(_texts(content)), tool_result)


def anthropic_message(body):
    """The whole assistant message (content blocks, stop reason)."""
    decision = anthropic_decision(body)
    if decision[0] == "write":
        block = {
            "type": "tool_use",
            "id": "toolu_" + uuid.uuid4().hex[:24],
            "name": "Write",
            "input": {"file_path": decision[1], "content": decision[2] + "\n"},
        }
        stop = "tool_use"
    else:
        block = {"type": "text", "text": decision[1]}
        stop = "end_turn"
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or "claude-stand-in",
        "content": [block],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 6},
    }


def anthropic_events(message):
    """The message as the Messages API streams it: (event, data) pairs."""
    start = dict(
        message, content=[], stop_reason=None, usage={"input_tokens": 12, "output_tokens": 1}
    )
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            empty = {"type": "text", "text": ""}
            text = block["text"]
            deltas = [
                {"type": "text_delta", "text": text[i : i + 8]} for i in range(0, len(text), 8)
            ]
        else:
            empty = dict(block, input={})
            raw = json.dumps(block["input"])
            deltas = [
                {"type": "input_json_delta", "partial_json": raw[i : i + 16]}
                for i in range(0, len(raw), 16)
            ]
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": empty},
        )
        yield "ping", {"type": "ping"}
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": 6},
        },
    )
    yield "message_stop", {"type": "message_stop"}


# ---------------------------------------------------------------- Gemini


# What a JSON-mode answer holds for a property, by name (the model router's choice, the
# next-speaker check) and otherwise by type.
_NAMED = {"model_choice": "flash", "next_speaker": "user"}
_BY_TYPE = {"array": [], "integer": 0, "number": 0, "boolean": False, "string": "stand-in"}


def _schema_value(schema, name=""):
    """A value that satisfies a (small) JSON schema."""
    kind = str(schema.get("type", "object")).lower()
    choices = schema.get("enum") or []
    if choices:
        preferred = [c for c in ("flash", "user") if c in choices]
        return (preferred or choices)[0]
    if kind == "object":
        props = schema.get("properties") or {}
        return {key: _schema_value(sub, key) for key, sub in props.items()}
    return _NAMED.get(name, _BY_TYPE.get(kind, "stand-in"))


def gemini_response(body):
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    contents = body.get("contents") or []
    last = next((c for c in reversed(contents) if c.get("role", "user") == "user"), {})
    parts = last.get("parts") or []
    if schema or config.get("responseMimeType") == "application/json":
        value = _schema_value(schema or {"type": "object", "properties": {}})
        if isinstance(value, dict) and "reasoning" in value:
            value["reasoning"] = "stand-in router"
        part = {"text": json.dumps(value)}
    else:
        seen = any(isinstance(p, dict) and "functionResponse" in p for p in parts)
        decision = decide("\n".join(_texts(parts)), seen)
        if decision[0] == "write":
            args = {"file_path": decision[1], "content": decision[2] + "\n"}
            part = {"functionCall": {"name": "write_file", "args": args}}
        else:
            part = {"text": decision[1]}
    return {
        "candidates": [
            {"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 6, "totalTokenCount": 18},
        "modelVersion": "stand-in",
    }


# ---------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "model-api-stand-in"

    def log_message(self, *args):
        pass

    def _send_json(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _record(self, kind, body):
        headers = {k: self.headers[k] for k in RECORDED_HEADERS if self.headers.get(k)}
        entry = {
            "kind": kind,
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body": body,
            "time": time.time(),
        }
        with self.server.lock:
            self.server.requests.append(entry)

    def do_GET(self):
        if urlsplit(self.path).path == "/_standin/requests":
            with self.server.lock:
                self._send_json(200, list(self.server.requests))
        elif urlsplit(self.path).path == "/_standin/ready":
            self._send_json(200, {"ready": True})
        else:
            self._not_found()

    def _not_found(self):
        self._send_json(
            404,
            {
                "type": "error",
                "error": {
                    "type": "not_found_error",
                    "message": f"{self.path} is not served by the stand-in",
                },
            },
        )

    def do_POST(self):
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._send_json(
                400,
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "body is not JSON"},
                },
            )
            return
        if path == "/_standin/reset":
            with self.server.lock:
                self.server.requests.clear()
            self._send_json(200, {"reset": True})
        elif path == "/v1/messages":
            self._record("anthropic", body)
            message = anthropic_message(body)
            if not body.get("stream"):
                self._send_json(200, message)
                return
            self._start_sse()
            for event, data in anthropic_events(message):
                self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
        elif path == "/v1/messages/count_tokens":
            self._record("anthropic-count", body)
            self._send_json(200, {"input_tokens": 12})
        elif path.startswith("/v1beta/models/") and ":" in path:
            action = path.rsplit(":", 1)[1]
            self._record("gemini-" + action, body)
            if action == "countTokens":
                self._send_json(200, {"totalTokens": 12})
            elif action == "generateContent":
                self._send_json(200, gemini_response(body))
            elif action == "streamGenerateContent":
                self._start_sse()
                data = json.dumps(gemini_response(body))
                self.wfile.write(f"data: {data}\r\n\r\n".encode())
                self.wfile.flush()
            else:
                self._not_found()
        else:
            self._record("other", body)
            self._not_found()


def serve(port=PORT):
    server = ThreadingHTTPServer(("0.0.0.0", port), _Handler)  # noqa: S104 - a test container
    server.daemon_threads = True
    server.requests = []
    server.lock = threading.Lock()
    print(f"model API stand-in listening on {port}", flush=True)
    server.serve_forever()


# ---------------------------------------------------------------- the test side


class ModelAPI:
    """A running stand-in container: `url` (http://IP:PORT), `requests()`, `reset()`,
    `stop()`; a context manager."""

    def __init__(self, name, ip, port=PORT):
        self.name = name
        self.ip = ip
        self.port = port
        self.url = f"http://{ip}:{port}"

    @classmethod
    def start(cls, *, network="bridge", image=STANDIN_IMAGE, name=None, labels=None):
        import subprocess

        name = name or f"devenv-test-modelapi-{uuid.uuid4().hex[:8]}"
        argv = ["docker", "run", "-d", "--name", name, "--network", network]
        for key, value in {TEST_LABEL: "1", **(labels or {})}.items():
            argv += ["--label", f"{key}={value}"]
        argv += [
            "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--user", "65534:65534", "--memory", "256m", "--pids-limit", "64",
            "--mount", f"type=bind,source={__file__},target=/srv/model_api.py,readonly",
            image, "python3", "/srv/model_api.py", str(PORT),
        ]  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
        api = None
        try:
            info = json.loads(
                subprocess.run(
                    ["docker", "inspect", name],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=60,
                ).stdout
            )[0]
            networks = info["NetworkSettings"]["Networks"]
            ip = (networks.get(network) or next(iter(networks.values())))["IPAddress"]
            api = cls(name, ip)
            api.wait_ready()
            return api
        except BaseException:
            subprocess.run(
                ["docker", "rm", "-f", name], capture_output=True, check=False, timeout=60
            )
            raise

    def _call(self, method, path, timeout=10):
        import urllib.request

        data = b"" if method == "POST" else None
        # Plain HTTP to the test container's own address.
        request = urllib.request.Request(self.url + path, method=method, data=data)  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return json.loads(answer.read())

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._call("GET", "/_standin/ready", timeout=2)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def requests(self, kind=None):
        """The recorded requests, oldest first; `kind`: anthropic, gemini-<action>, ..."""
        found = self._call("GET", "/_standin/requests")
        return [r for r in found if kind is None or r["kind"] == kind]

    def reset(self):
        self._call("POST", "/_standin/reset")

    def stop(self):
        import subprocess

        subprocess.run(
            ["docker", "rm", "-f", self.name], capture_output=True, check=False, timeout=60
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def texts_of(request):
    """All strings of a recorded request's messages or contents (what the model saw)."""
    body = request.get("body") or {}
    return "\n".join(_texts(body.get("messages") or body.get("contents") or []))


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else PORT)
