"""The client SDK: keys, request signing, frames, HTTP and NATS."""
