"""The embedded default folder of dismai-data, shared by the CLI, the hub, the
builders' work folders and the evaluation module."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """``$DISMAI_HOME``, else the user's cache dir (``~/.cache/dismai-data``). Holds
    ``datasets/`` (built datasets), ``hub/`` (hub storage) and ``work/`` (builder checkpoints)."""
    env = os.environ.get("DISMAI_HOME")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("dismai-data"))
