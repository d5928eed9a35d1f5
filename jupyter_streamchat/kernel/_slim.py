"""ipywidgets whose opening message carries only what differs from the front end's defaults.

A stock widget opens with its full state (a ``Layout`` alone has ~40 keys, all ``None``). Panes open
many small widgets while a reply streams, so each opens with ``get_state(drop_defaults=True)``, the
same mechanism ipywidgets uses for embedding, keeping the keys the front end needs to build the
model. Later updates are unchanged: only changed traits are sent, as always.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
from ipywidgets.widgets.widget_button import ButtonStyle
from ipywidgets.widgets.widget_string import HTMLStyle

_IDENTITY = (
    "_model_module",
    "_model_module_version",
    "_model_name",
    "_view_module",
    "_view_module_version",
    "_view_name",
)


class SlimOpen(widgets.Widget):
    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        state: dict[str, Any]  # ipywidgets ships no types: this is what get_state documents
        if key is not None or self.comm is not None:
            state = super().get_state(key, drop_defaults)
            return state
        state = super().get_state(None, drop_defaults=True)
        for name in _IDENTITY:
            if self.has_trait(name):
                state[name] = getattr(self, name)
        return state


class Layout(SlimOpen, widgets.Layout):
    pass


class HTMLStyleSlim(SlimOpen, HTMLStyle):
    pass


class ButtonStyleSlim(SlimOpen, ButtonStyle):
    pass


class HTML(SlimOpen, widgets.HTML):
    pass


class VBox(SlimOpen, widgets.VBox):
    pass


class HBox(SlimOpen, widgets.HBox):
    pass


class Button(SlimOpen, widgets.Button):
    pass


class Accordion(SlimOpen, widgets.Accordion):
    pass
