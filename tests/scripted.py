"""A scripted OpenAI-compatible server: the test double for a hostile or broken model.

Real models cannot be made to write a given hostile reply on demand, so the tests that inject
one (markup in an answer, an exploit in a ``Compute:`` line) point rader's ``openai`` backend
at this server. ``respond(messages, body)`` returns the reply text for each chat request (or
``(text, logprob)``: the log-probability of every streamed piece, ~0.99 by default), or raises
`ServerFault` to answer with an HTTP error (a server failing on one request); streaming, usage
and log-probabilities follow the OpenAI wire format that the client reads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Respond = Callable[[list[dict], dict], str | tuple[str, float]]


class ServerFault(Exception):
    """Raised by ``respond``: the request gets HTTP ``status`` instead of a reply."""

    def __init__(self, status: int = 500) -> None:
        super().__init__(status)
        self.status = status


class ScriptedServer:
    """``with ScriptedServer(respond) as server: ... server.url ...``"""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                try:
                    reply = outer.respond(body["messages"], body)
                except ServerFault as fault:
                    self._send(fault.status, {"error": {"message": "injected fault", "type": "server_error"}})
                    return
                text, logprob = reply if isinstance(reply, tuple) else (reply, -0.01)
                if body.get("stream"):
                    self._stream(body, text, logprob)
                else:
                    self._send(200, _completion(body, text))

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict, text: str, logprob: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                pieces = [text[i:i + 8] for i in range(0, len(text), 8)] or [""]
                for piece in pieces:
                    choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    if body.get("logprobs"):  # every piece written at the same probability
                        choice["logprobs"] = {"content": [{"token": piece, "logprob": logprob, "bytes": None,
                                                           "top_logprobs": []}]}
                    chunk = {"id": "s", "object": "chat.completion.chunk", "model": body.get("model", "m"),
                             "choices": [choice]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                final = {"id": "s", "object": "chat.completion.chunk", "model": body.get("model", "m"),
                         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                         "usage": _usage(body, text)}
                self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def _usage(body: dict, text: str) -> dict:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
    completion = max(1, len(text.split()))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(body: dict, text: str) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if body.get("logprobs"):  # a one-word verdict: its first token with yes/no alternatives
        first = (text.split() or [""])[0]
        alternatives = [{"token": word, "logprob": -0.01 if word == first else -5.0, "bytes": None}
                        for word in ("yes", "no")]
        choice["logprobs"] = {"content": [{"token": first, "logprob": -0.01, "bytes": None,
                                           "top_logprobs": alternatives}]}
    return {"id": "c", "object": "chat.completion", "model": body.get("model", "m"), "choices": [choice],
            "usage": _usage(body, text)}
