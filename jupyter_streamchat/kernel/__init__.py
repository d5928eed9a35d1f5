"""The kernel side: ``chat``/``compare`` widgets and panes, Markdown rendering, the magics, the backends
(a server's API through ``client``, or an in-process engine) and terminal/headless fallbacks.
It never imports ``server``.
"""

from __future__ import annotations

from ._results import PaneResult, RecordState

__all__ = ["PaneResult", "RecordState"]
