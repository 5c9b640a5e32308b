"""moto's server, answering one request at a time.

DynamoDB applies conditional writes to an item atomically. moto's own `moto_server` is
threaded without locks, so two concurrent conditional writes can both succeed there — a
race AWS never has, which would make the concurrency tests (and the local run) lie.
Serving requests one by one restores DynamoDB's guarantee; the server then speaks
HTTP/1.0, so no client's keep-alive connection can hold it.

Every user starts moto this way: `make dev`, `make profile`, and the integration tests,
which pass `--parent` so that the server ends with the test process however it ends.

Usage: python scripts/moto_server.py [-H 127.0.0.1] [-p 5000] [--parent PID]
"""

import argparse
import os
import signal
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--parent", type=int, help="stop when the process with this pid is gone")
    args = parser.parse_args()
    if args.parent:
        threading.Thread(target=exit_with, args=(args.parent,), daemon=True).start()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=False, request_handler=MotoRequestHandler)


def exit_with(parent):
    while True:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        time.sleep(1)


if __name__ == "__main__":
    main()
