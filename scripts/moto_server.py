"""moto's server, answering one request at a time.

DynamoDB applies conditional writes to an item atomically. moto's own `moto_server` is
threaded without locks, so two concurrent conditional writes can both succeed there — a
race AWS never has, which would make the concurrency tests (and the local run) lie.
Serving requests one by one restores DynamoDB's guarantee; the server then speaks
HTTP/1.0, so no client's keep-alive connection can hold it.

Usage: python scripts/moto_server.py [-H 127.0.0.1] [-p 5000]
"""

import argparse
import os
import signal
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
