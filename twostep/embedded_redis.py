"""A Redis for machines that have none: fakeredis's TCP server, with Lua, in its own process.

It speaks enough of Redis for Celery, kombu and ``limits``, but it is slow (about 10 jobs a
second instead of about 1,000): good for trying twostep out, not for load.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from fakeredis import TcpFakeServer


def serve(host: str, port: int) -> None:
    server = TcpFakeServer((host, port), server_type="redis")
    stop = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    thread = threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True)
    thread.start()
    sys.stderr.write(f"embedded Redis (fakeredis) listening on {host}:{port}\n")
    stop.wait()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    serve(arguments.host, arguments.port)
