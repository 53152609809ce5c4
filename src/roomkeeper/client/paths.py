"""Where the client looks for its files by default.

The terminal commands (``roomkeeper keygen``, ``sign`` and the chat commands) all
default to the same identity file, so the rule lives here once.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_identity_path"]


def default_identity_path() -> Path:
    """``$ROOMKEEPER_IDENTITY``, else ``identity.json`` in the ``roomkeeper`` directory
    of ``$XDG_CONFIG_HOME`` (``~/.config`` when unset or empty)."""
    if env := os.environ.get("ROOMKEEPER_IDENTITY"):
        return Path(env)
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config_home) / "roomkeeper" / "identity.json"
