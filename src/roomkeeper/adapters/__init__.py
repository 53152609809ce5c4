"""Adapters: bind the core to NATS, memory, HTTP and the command line."""
