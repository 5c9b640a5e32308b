"""A local Lambda Runtime API that hands a function a fixed list of events, once each.

  python scripts/runtime_api.py --port 9001 --events events.json --answers answers.json

Serves `GET /2018-06-01/runtime/invocation/next` from the list (the function's deadline is
60 s after each hand-over), records every answer (`…/response`, `…/error`), and writes them
to --answers. Once the list is used up, `next` gets no answer (the connection is closed):
the function's runtime stops and its process ends, which `make profile` needs for callgrind
to write its counts. Each answer carries when its event was handed over and when it was
answered (`handed_at`, `answered_at`: seconds since the epoch), for scripts/memory_size.py.

scripts/profile.py and scripts/memory_size.py start it through `serving` below.
"""

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PREFIX = "/2018-06-01/runtime"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(events):
    """This Runtime API, in its own process on a free port, over `events`: yields (port,
    answers), where `answers()` reads what the function answered once its process ended.
    The server is stopped on leaving."""
    with tempfile.TemporaryDirectory() as tmp:
        events_file, answers_file = Path(tmp, "events.json"), Path(tmp, "answers.json")
        events_file.write_text(json.dumps(events))
        port = free_port()
        api = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--port", str(port),
                                "--events", str(events_file), "--answers", str(answers_file)])
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield port, lambda: json.loads(answers_file.read_text()) if answers_file.exists() else []
        finally:
            api.terminate()
            api.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--answers", required=True)
    args = parser.parse_args()
    with open(args.events, encoding="utf-8") as file:
        events = json.load(file)
    answers = []
    handed = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def reply(self, status, body=b"", headers=None):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next":
                return self.reply(404)
            if len(answers) < len(events) and events:
                index = len(answers)
                answers.append(None)
                handed[index] = time.time()
                body = json.dumps(events[index]).encode()
                return self.reply(200, body, {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": f"request-{index}",
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:kadoa-webhook",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })
            # The last answer may still be on its way on another connection.
            deadline = time.time() + 10
            while None in answers and time.time() < deadline:
                time.sleep(0.01)
            with open(args.answers, "w", encoding="utf-8") as file:
                json.dump(answers, file)
            # A moment for `make profile` to read the finished function's peak memory; then
            # hung up without an answer: the runtime's `next` fails, so `run` returns an
            # error and the process exits (a 500 would make lambda_runtime panic on the
            # missing request id, and that unwinding would be counted as start-up).
            time.sleep(0.1)
            self.close_connection = True

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8", "replace")
            parts = self.path[len(PREFIX):].strip("/").split("/")
            if len(parts) == 3 and parts[0] == "invocation":
                index = int(parts[1].rsplit("-", 1)[1])
                answers[index] = {"kind": parts[2], "body": body, "handed_at": handed.get(index),
                                  "answered_at": time.time()}
            return self.reply(202, b"{}")

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
