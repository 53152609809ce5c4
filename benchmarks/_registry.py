"""The registry: every strategy and probe the harness knows, in table order.

The roomkeeper-backed ones import the adapters lazily: while those modules are being
worked on and do not import, the harness still runs strategies 1-3 and says why the
others are missing, instead of failing as a whole.
"""

from __future__ import annotations

from ._strategies import (
    BatchDirectGet,
    Pending,
    PipelinedGetMsg,
    Probe,
    SeedSequential,
    Strategy,
)

__all__ = ["probes", "strategies"]


def strategies() -> tuple[Strategy, ...]:
    return (SeedSequential(), PipelinedGetMsg(), BatchDirectGet(), _adapter(), _http())


def probes() -> tuple[Probe, ...]:
    try:
        from ._probes import HttpLoad, ServerMemory
    except ImportError as exc:
        why = f"the HTTP path does not import: {exc}"
        return (Pending("http_concurrency", "HTTP history under concurrent clients", why),
                Pending("server_peak_rss", "HTTP server memory, 64 KiB frames", why))
    return (HttpLoad(), ServerMemory())


def _adapter() -> Strategy:
    try:
        from ._adapter import AdapterFetch
    except ImportError as exc:
        return Pending("adapter_fetch", "4. StreamStore.fetch (adapter)",
                       f"roomkeeper's NATS adapter does not import: {exc}")
    return AdapterFetch()


def _http() -> Strategy:
    try:
        from ._http import HttpHistory
    except ImportError as exc:
        return Pending("http_history", "5. signed GET /history (HTTP)",
                       f"the HTTP path does not import: {exc}")
    return HttpHistory()
