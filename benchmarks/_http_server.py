"""``python -m benchmarks._http_server NATS_URL``: the roomkeeper HTTP server on a NATS
deployment, on a free loopback port, in a process of its own (so its memory can be
measured alone). It runs the CLI's serve path (``serve_forever``: Hypercorn on Trio,
request logging at INFO) with ``nats_deployment(url)``; the CLI cannot serve on an
existing NATS yet. Prints ``roomkeeper: serving on http://HOST:PORT``; SIGTERM stops it.
"""

from __future__ import annotations

import logging
import sys
from functools import partial

import trio

from roomkeeper.adapters.cli import serve_forever
from roomkeeper.adapters.nats.deployment import nats_deployment


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m benchmarks._http_server NATS_URL", file=sys.stderr)
        return 2
    # As `roomkeeper serve` does: one INFO line per request is part of the real path.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    trio.run(partial(serve_forever, partial(nats_deployment, argv[0]), "127.0.0.1:0", None,
                     announce=partial(print, flush=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
