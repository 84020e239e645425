"""The section picker of the dock widgets: a combo box of the viewer's section layers, kept up to date."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox

from ..errors import SencaError
from ._sections import section_layers

__all__ = ["SectionPicker"]


class SectionPicker(ComboBox):
    """A combo box of the viewer's section layers, kept up to date.

    Its ``value`` is the picked layer (or None when there is none). A newly
    added section becomes current only while the user has not picked one
    (once they have, their pick stays until that layer is removed); renamed
    layers keep their place, a removed one gives way to the newest section.
    """

    def __init__(self, viewer: Any, label: str = "section", **kwargs: Any) -> None:
        self._viewer = viewer
        self._auto = 0  # > 0 while the value is set by the picker itself
        #: True once the user picked a section in the combo box
        self.user_picked = False
        super().__init__(label=label, choices=self._choices, nullable=True, **kwargs)
        ev = viewer.layers.events
        ev.inserted.connect(self._on_inserted)
        ev.removed.connect(self._refresh)
        ev.reordered.connect(self._refresh)
        for ly in viewer.layers:
            ly.events.name.connect(self._refresh)
        self.changed.connect(self._on_changed)
        self._refresh()

    def _layers(self) -> list[Any]:
        return section_layers(self._viewer)

    def _choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(ly.name, ly) for ly in self._layers()]

    def _set(self, layer: Any) -> None:
        self._auto += 1
        try:
            self.value = layer
        finally:
            self._auto -= 1

    def _on_changed(self, value: Any) -> None:
        if not self._auto:
            self.user_picked = value is not None

    def _refresh(self, event: Any = None) -> None:
        current = self.value
        self._auto += 1
        try:
            self.reset_choices()
        finally:
            self._auto -= 1
        layers = self._layers()
        if current in layers:
            self._set(current)
        else:
            self.user_picked = False
            self._set(layers[-1] if layers else None)

    def _on_inserted(self, event: Any) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            layer.events.name.connect(self._refresh)
        self._refresh()
        if layer is not None and layer in self._layers() and not self.user_picked:
            self._set(layer)

    def require(self) -> Any:
        """The chosen layer, or raise :class:`SencaError` when there is none."""
        layer = self.value
        if layer is None or layer not in self._viewer.layers:
            raise SencaError(
                "no section loaded: open one with the Load section widget, File > Open, "
                "or File > Open Sample > napari-senca"
            )
        return layer

    def close_connections(self) -> None:
        """Disconnect from the viewer (when the widget is closed)."""
        ev = self._viewer.layers.events
        for sig, cb in ((ev.inserted, self._on_inserted), (ev.removed, self._refresh), (ev.reordered, self._refresh)):
            try:
                sig.disconnect(cb)
            except (TypeError, RuntimeError, ValueError):
                pass
