"""``python -m jupyter_streamchat [--help-all]``: a Jupyter server with jupyter_streamchat, or its options."""

from __future__ import annotations

from .server.app import main

if __name__ == "__main__":
    main()
