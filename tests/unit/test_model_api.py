"""The model API stand-ins follow the public contracts the agents use (no engine: the
server runs in this process on loopback)."""

import json
import sys
import threading
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
import model_api as ma


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ma._Handler)
    httpd.requests, httpd.lock = [], threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    api = ma.ModelAPI("in-process", "127.0.0.1", httpd.server_address[1])
    yield api
    httpd.shutdown()
    httpd.server_close()


def post(api, path, body, headers=None):
    request = urllib.request.Request(  # noqa: S310 - loopback
        api.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
        return answer.headers.get("Content-Type"), answer.read().decode()


def sse(text):
    """(event, data) pairs of a Server-Sent Events body."""
    events, name = [], None
    for line in text.splitlines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


def test_anthropic_streams_a_text_answer_as_the_messages_api_does(server):
    body = {
        "model": "claude-sonnet-4-5",
        "stream": True,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi standin-tag:t1"}]}],
    }
    kind, text = post(server, "/v1/messages?beta=true", body, {"x-api-key": "k-1"})
    assert kind == "text/event-stream"
    events = sse(text)
    names = [n for n, _d in events if n != "ping"]
    assert names == [
        "message_start", "content_block_start", *["content_block_delta"] * 2,
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(d["type"] == n for n, d in events)
    deltas = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert deltas == "ANSWER(t1)"
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    (recorded,) = server.requests("anthropic")
    assert recorded["headers"]["x-api-key"] == "k-1" and recorded["path"].endswith("beta=true")


def test_anthropic_asks_for_a_tool_and_then_answers_its_result(server):
    ask = {"stream": True, "messages": [{"role": "user", "content": "standin-write:/app/f.txt:w1"}]}
    events = sse(post(server, "/v1/messages", ask)[1])
    start = next(d for n, d in events if n == "content_block_start")["content_block"]
    assert (start["type"], start["name"], start["input"]) == ("tool_use", "Write", {})
    raw = "".join(d["delta"]["partial_json"] for n, d in events if n == "content_block_delta")
    assert json.loads(raw) == {"file_path": "/app/f.txt", "content": "w1\n"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    tool_result = {"type": "tool_result", "tool_use_id": start["id"], "content": "ok"}
    result = {
        "messages": [
            {"role": "user", "content": "standin-write:/app/f.txt:w1"},
            {"role": "assistant", "content": [dict(start, input={})]},
            {"role": "user", "content": [tool_result]},
        ]
    }
    _kind, text = post(server, "/v1/messages", result)
    assert json.loads(text)["content"] == [{"type": "text", "text": "ANSWER(wrote)"}]


def test_gemini_router_gets_its_json_choice_and_the_answer_streams(server):
    router = {
        "contents": [{"role": "user", "parts": [{"text": "standin-tag:g1"}]}],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": {
                "type": "OBJECT",
                "properties": {
                    "reasoning": {"type": "STRING"},
                    "model_choice": {"type": "STRING", "enum": ["flash", "pro"]},
                },
                "required": ["reasoning", "model_choice"],
            },
        },
    }
    _kind, text = post(server, "/v1beta/models/gemini-2.5-flash-lite:generateContent", router)
    part = json.loads(text)["candidates"][0]["content"]["parts"][0]
    assert json.loads(part["text"])["model_choice"] == "flash"
    ask = {"contents": [{"role": "user", "parts": [{"text": "hi standin-tag:g1"}]}]}
    kind, text = post(server, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", ask)
    assert kind == "text/event-stream"
    (event,) = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    candidate = event["candidates"][0]
    assert candidate["content"] == {"parts": [{"text": "ANSWER(g1)"}], "role": "model"}
    assert candidate["finishReason"] == "STOP" and event["usageMetadata"]["totalTokenCount"]
    assert [r["kind"] for r in server.requests()] == [
        "gemini-generateContent",
        "gemini-streamGenerateContent",
    ]
    server.reset()
    assert server.requests() == []


def test_unknown_paths_get_a_plain_404(server):
    with pytest.raises(urllib.error.HTTPError) as info:
        post(server, "/v1/complete", {})
    assert info.value.code == 404
