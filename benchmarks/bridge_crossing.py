"""What one trio -> asyncio -> trio crossing of the NATS bridge costs.

Run ``python -m benchmarks.bridge_crossing [--calls N] [--rounds R]``. No server needed:
the crossed coroutine does nothing, so the time is the bridge's own (schedule on the
loop thread, run the task, wake the Trio task through its TrioToken). Reported as the
median over rounds, sequential (latency) and with 100 callers at once (throughput).
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio

from roomkeeper.adapters.nats import NatsBridge, open_bridge


async def _nothing() -> None:
    return None


async def _sequential(bridge: NatsBridge, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await bridge.call(_nothing)
    return (time.perf_counter() - start) / calls


async def _concurrent(bridge: NatsBridge, calls: int, callers: int = 100) -> float:
    async def caller() -> None:
        for _ in range(calls // callers):
            await bridge.call(_nothing)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(caller)
    return (time.perf_counter() - start) / (calls // callers * callers)


async def _main(calls: int, rounds: int) -> None:
    async with open_bridge() as bridge:
        await _sequential(bridge, 200)  # warm up
        sequential = [await _sequential(bridge, calls) for _ in range(rounds)]
        concurrent = [await _concurrent(bridge, calls) for _ in range(rounds)]
    print(f"sequential crossing: {statistics.median(sequential) * 1e6:7.1f} us per call")
    print(f"100 callers at once: {statistics.median(concurrent) * 1e6:7.1f} us per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trio.run(_main, args.calls, args.rounds)


if __name__ == "__main__":
    main()
