#!/usr/bin/env python3
"""A stand-in for the Anthropic Messages API, following its public contract, for tests
that run the real Claude Code against it (no model API is reachable from the test
machines). Standard library only; serves HTTPS with the test's certificate.

    python3 anthropic_api.py --port 443 --cert server.pem --answer TEXT --record FILE

- POST /v1/messages (any query string): with "stream": true, Server-Sent Events in the
  documented order (message_start, content_block_start, content_block_delta with a
  text_delta, content_block_stop, message_delta with stop_reason, message_stop); without
  it, one JSON message. The text is --answer. A request without an x-api-key (or a
  Bearer authorization) gets the documented 401 error.
- POST /v1/messages/count_tokens: {"input_tokens": N}.
- Anything else: 404 with the documented error shape.
Each request is recorded as one JSON line in --record: method, path, model, stream, and
the peer's address (which shows that it came through the proxy).

A fuller stand-in (tool calls, Gemini) is being written on another branch; this one
covers what a `claude -p` prompt needs.
"""

import argparse
import json
import ssl
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sse(event, data):
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "anthropic-stand-in"

    def log_message(self, *args):
        pass

    def _record(self, body):
        entry = {
            "method": self.command,
            "path": self.path,
            "model": body.get("model") if isinstance(body, dict) else None,
            "stream": bool(body.get("stream")) if isinstance(body, dict) else False,
            "peer": self.client_address[0],
        }
        with self.server.lock, open(self.server.record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def _json(self, status, data):
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", "req_" + uuid.uuid4().hex)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status, kind, message):
        self._json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def do_GET(self):
        self._record({})
        self._error(404, "not_found_error", f"{self.path} is not served by the stand-in")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        self._record(body)
        path = self.path.split("?", 1)[0]
        authorized = self.headers.get("x-api-key") or (
            self.headers.get("authorization", "").startswith("Bearer ")
        )
        if path.startswith("/v1/") and not authorized:
            self._error(401, "authentication_error", "x-api-key header is required")
        elif path == "/v1/messages/count_tokens":
            self._json(200, {"input_tokens": 12})
        elif path == "/v1/messages":
            self._message(body)
        else:
            self._error(404, "not_found_error", f"{path} is not served by the stand-in")

    def _message(self, body):
        model = body.get("model") or "claude-stand-in"
        message_id = "msg_" + uuid.uuid4().hex[:24]
        usage = {"input_tokens": 12, "output_tokens": 6}
        text = self.server.answer
        if not body.get("stream"):
            self._json(
                200,
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
            return
        events = [
            sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 12, "output_tokens": 1},
                    },
                },
            ),
            sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
            ),
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 6},
                },
            ),
            sse("message_stop", {"type": "message_stop"}),
        ]
        # Chunked, one chunk per event, as the real API streams them; the connection
        # stays usable for the next request.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", help="PEM file with the certificate and its key")
    parser.add_argument("--answer", default="Hello from the stand-in.")
    parser.add_argument("--record", default="/dev/null")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)  # noqa: S104 - its container's own network
    server.answer, server.record, server.lock = args.answer, args.record, threading.Lock()
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
