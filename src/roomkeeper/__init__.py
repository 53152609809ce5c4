"""roomkeeper: the control plane for end-to-end-encrypted chat rooms on NATS."""

__version__ = "0.1.0"
