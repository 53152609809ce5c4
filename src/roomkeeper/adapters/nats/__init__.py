"""The NATS adapters: JetStream streams, KV rooms and nonces, core publish, and the
trio <-> asyncio bridge they all cross through."""

from .bridge import (
    DEFAULT_SUBSCRIPTION_BUFFER,
    BridgedSubscription,
    NatsBridge,
    NatsConnection,
    open_bridge,
    open_connection,
)

__all__ = [
    "DEFAULT_SUBSCRIPTION_BUFFER",
    "BridgedSubscription",
    "NatsBridge",
    "NatsConnection",
    "open_bridge",
    "open_connection",
]
