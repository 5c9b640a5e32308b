"""A small fake of Kadoa's REST API for `make memory-size`: what the reconcile function
reads, as ../shared/kadoa-api.md (and tests/it/support/kadoa.rs, the tests' fake) answer it.

  GET /v5/changes?startDate&endDate&skip&limit   the change list, skip/limit pages
  GET /v5/changes/{id}                           one change
  GET /v5/notifications/logs?startDate&endDate&offset&limit   the delivery log

Each API key has its own workspace (its changes and logged deliveries), so one server
serves every scenario; a wrong key gets 401. Runs in a thread of the caller: `start()`.
"""

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


def _instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _in_window(at, query):
    at = _instant(at)
    start, end = _instant(query.get("startDate")), _instant(query.get("endDate"))
    return at is not None and (start is None or at >= start) and (end is None or at < end)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    workspaces = {}

    def log_message(self, *_):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        workspace = self.workspaces.get(self.headers.get("x-api-key"))
        if workspace is None:
            return self.answer(401, {"error": "Unauthorized"})
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        number = lambda name, default: int(query.get(name, default))  # noqa: E731
        if url.path == "/v5/changes":
            matching = [c for c in workspace["changes"] if _in_window(c["createdAt"], query)]
            skip, limit = number("skip", 0), number("limit", 20)
            page = matching[skip:skip + limit]
            return self.answer(200, {"timestamp": "2025-01-16T00:00:00Z", "changesCount": len(page), "changes": page,
                                     "pagination": {"totalCount": len(matching), "page": skip // limit + 1,
                                                    "totalPages": max(1, -(-len(matching) // limit)), "limit": limit}})
        if url.path.startswith("/v5/changes/"):
            wanted = unquote(url.path[len("/v5/changes/"):])
            found = [c for c in workspace["changes"] if c["id"] == wanted]
            return self.answer(200, found[0]) if found else self.answer(404, {"error": "Not found"})
        if url.path == "/v5/notifications/logs":
            matching = [d for d in workspace["deliveries"] if _in_window(d["createdAt"], query)]
            offset, limit = number("offset", 0), number("limit", 50)
            page = matching[offset:offset + limit]
            pagination = {"total": len(matching), "limit": limit, "offset": offset,
                          "hasMore": offset + len(page) < len(matching)}
            return self.answer(200, {"status": "ok", "message": "", "data": {"events": page, "pagination": pagination}})
        return self.answer(404, {"error": "Not found"})


def delivery(number, payload):
    """A delivery in the log, as Kadoa lists it: `payload` is the webhook body it sent."""
    return {"id": f"log_{number}", "workflowId": payload["data"].get("workflowId"), "eventType": payload["eventType"],
            "eventStatus": "failed", "channelConfig": {}, "payload": payload, "eventId": f"evt_{number}",
            "createdAt": payload["timestamp"]}


def start(workspaces):
    """Serves `workspaces` ({api key: {"changes": [...], "deliveries": [...]}}) on a free
    loopback port; returns (base URL, server). `server.shutdown()` stops it."""
    handler = type("Handler", (_Handler,), {"workspaces": workspaces})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server
