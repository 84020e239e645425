"""The matplotlib side of the Embedding view: canvas, scatter, selection rings, colour bar (a mixin).

What is drawn is computed in :mod:`napari_senca.embedding_view`
(:class:`~napari_senca.embedding_view.PlotPoints`: every point for
selections, at most ``MAX_DRAWN`` of them in the scatter); this mixin only
puts it on the canvas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.widgets import LassoSelector, RectangleSelector

from .. import embedding_view as emb

__all__ = ["PlotMixin", "theme_colours"]

SELECTOR_COLOUR = "#ffff00"
#: Above this many drawn points the plot is an image, one pixel per point (:class:`~napari_senca.embedding_view.Splat`):
#: a 30,000-point scatter takes Agg about 0.2 s a draw, the image about 0.05 s.
DENSE_POINTS = 10_000


def theme_colours(viewer: Any) -> tuple[str, str]:
    """Background and text colour of the napari theme (dark by default)."""
    try:
        from napari.utils.theme import get_theme

        th = get_theme(viewer.theme)
        return th.background.as_hex(), th.text.as_hex()
    except Exception:  # pragma: no cover - older napari
        return "#262930", "#f0f1f2"


class PlotMixin:
    """Canvas, scatter and colour bar of :class:`~napari_senca._qt.EmbeddingWidget`.

    The widget provides ``_on_lasso(vertices)`` and ``_on_rectangle(press, release)``.
    """

    _bg: str
    _fg: str
    points: emb.PlotPoints | None

    def _build_plot(self, parent: Any) -> None:
        """Create the figure, the toolbar, the colour bar canvas and the two selectors."""
        bg = self._bg
        self.figure = Figure(figsize=(4, 3.4), facecolor=bg, constrained_layout=True)
        self.ax = self.figure.add_subplot(111)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(260)
        self.toolbar = NavigationToolbar2QT(self.canvas, parent)
        self.cbar_figure = Figure(figsize=(4, 0.55), facecolor=bg, constrained_layout=True)
        self.cbar_canvas = FigureCanvasQTAgg(self.cbar_figure)
        self.cbar_canvas.setFixedHeight(56)
        self.cbar_canvas.setVisible(False)
        self._scatter: Any = None
        self._ring: Any = None
        self._image: Any = None  # dense plots: an AxesImage painted from self._splat
        self._splat: emb.Splat | None = None
        self.canvas.mpl_connect("draw_event", self._freeze_layout)
        self.canvas.mpl_connect("resize_event", self._on_resize)
        self._resplat_pending = False
        self.lasso = LassoSelector(self.ax, onselect=self._on_lasso, button=1,
                                   props={"color": SELECTOR_COLOUR, "linewidth": 1.5})  # fmt: skip
        self.rectangle = RectangleSelector(self.ax, self._on_rectangle, button=3, useblit=True, minspanx=3,
                                           minspany=3, spancoords="pixels", interactive=False,
                                           props={"edgecolor": SELECTOR_COLOUR, "fill": False})  # fmt: skip

    def _relayout(self, *_: Any) -> None:
        """Lay the axes out again at the next draw (new size, title or labels)."""
        self.figure.set_layout_engine("constrained")

    def _on_resize(self, *_: Any) -> None:
        self._relayout()
        self._view_changed()

    def _view_changed(self, *_: Any) -> None:
        """A resize or a zoom: redo the dense plot's image at the new size and view (once per event burst)."""
        if self._image is None or self._resplat_pending:
            return
        self._resplat_pending = True
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, self._resplat)

    def _resplat(self) -> None:
        self._resplat_pending = False
        if self._image is None or self.points is None:
            return
        (x0, x1), (y0, y1) = self.ax.get_xlim(), self.ax.get_ylim()
        self._splat = emb.Splat.of(self.points.xy[self.points.drawn], *self._raster_size(), extent=(x0, x1, y0, y1))
        self._image.set_extent(self._splat.extent)
        self._recolour_plot()

    def _raster_size(self) -> tuple[int, int]:
        """``(width, height)`` of a dense plot's image: the axes' size in pixels (64-1,600)."""
        box = self.ax.get_window_extent()
        w, h = (int(np.clip(v, 64, 1600)) for v in (box.width, box.height))
        return w, h

    def _recolour_plot(self) -> None:  # pragma: no cover - provided by the widget
        raise NotImplementedError

    def _freeze_layout(self, *_: Any) -> None:
        """Keep the layout of the last draw: recolouring redraws skip the constrained layout (half their time)."""
        if isinstance(self.figure.get_layout_engine(), ConstrainedLayoutEngine):
            self.figure.set_layout_engine("none")

    def _on_lasso(self, vertices: Any) -> None:  # pragma: no cover - provided by the widget
        raise NotImplementedError

    def _on_rectangle(self, press: Any, release: Any) -> None:  # pragma: no cover - provided by the widget
        raise NotImplementedError

    @property
    def xy(self) -> np.ndarray | None:
        """The plotted layout of every spot, ``(n, 2)`` (None when nothing is plotted)."""
        return None if self.points is None else self.points.xy

    def _style_axes(self) -> None:
        ax = self.ax
        ax.set_facecolor(self._bg)
        for s in ax.spines.values():
            s.set_color(self._fg)
        ax.tick_params(colors=self._fg, labelsize=7)
        ax.xaxis.label.set_color(self._fg)
        ax.yaxis.label.set_color(self._fg)
        ax.title.set_color(self._fg)

    def _draw_message(self, text: str) -> None:
        self.points = None
        self._scatter = self._ring = self._image = self._splat = None
        self._relayout()
        self.ax.clear()
        self._style_axes()
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.ax.text(0.5, 0.5, text, ha="center", va="center", color=self._fg, transform=self.ax.transAxes)
        self.canvas.draw_idle()

    def _draw_points(self, points: emb.PlotPoints, name: str) -> None:
        """A new scatter of the drawn points (uncoloured: :meth:`_paint` colours them)."""
        self.points = points
        self._relayout()
        self.ax.clear()
        self._style_axes()
        m = len(points.drawn)
        xy = points.xy[points.drawn]
        self._scatter = self._ring = self._image = self._splat = None
        if m > DENSE_POINTS:
            self._splat = emb.Splat.of(xy, *self._raster_size())
            self._image = self.ax.imshow(np.zeros((*self._splat.shape, 4)), extent=self._splat.extent, origin="lower",
                                         interpolation="nearest", aspect="auto")  # fmt: skip
            self.ax.set_autoscale_on(False)  # the view is the user's (zoom, pan): the image follows it
            for axis in ("xlim_changed", "ylim_changed"):  # axes.clear() drops these: connect for every plot
                self.ax.callbacks.connect(axis, self._view_changed)
        else:
            size = float(min(10.0, max(0.5, 8000.0 / max(m, 1))) * 2)
            self._scatter = self.ax.scatter(xy[:, 0], xy[:, 1], s=size, linewidths=0)
            self._ring = self.ax.scatter([], [], s=size * 2.2, facecolors="none", edgecolors="#ffffff", linewidths=0.8)
        self.ax.set_xlabel(f"{name} 1", fontsize=8)
        self.ax.set_ylabel(f"{name} 2", fontsize=8)
        drawn = f", {m:,} drawn" if points.subsampled else ""
        self.ax.set_title(f"{name} of X_senca ({points.n:,} spots{drawn})", fontsize=9)

    def _paint(self, rgba: np.ndarray, ring: np.ndarray) -> None:
        """Colour the drawn points and ring the selected ones (``rgba`` and ``ring`` from ``PlotPoints``)."""
        if self._image is not None and self._splat is not None:
            self._image.set_data(self._splat.image(rgba, ring))
        else:
            self._scatter.set_facecolors(rgba)
            self._ring.set_offsets(ring if len(ring) else np.zeros((0, 2)))
        self.canvas.draw_idle()

    @property
    def painted(self) -> bool:
        """True when points are on the canvas (a scatter or, for dense plots, an image)."""
        return self._scatter is not None or self._image is not None

    def _draw_colourbar(self, on: bool) -> None:
        self.cbar_canvas.setVisible(on)
        if not on:
            return
        import matplotlib
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        self.cbar_figure.clear()
        ax = self.cbar_figure.add_subplot(111)
        sm = ScalarMappable(norm=Normalize(0, 1), cmap=matplotlib.colormaps[emb.CONFIDENCE_CMAP])
        cb = self.cbar_figure.colorbar(sm, cax=ax, orientation="horizontal")
        cb.set_label("confidence (0 = on a boundary, 1 = at the region centre; grey = by hand)",
                     color=self._fg, fontsize=7)  # fmt: skip
        cb.ax.tick_params(colors=self._fg, labelsize=7)
        cb.outline.set_edgecolor(self._fg)
        ax.axvline(self._threshold_value(), color="#ffffff", linewidth=1.2)
        self.cbar_canvas.draw_idle()

    def _threshold_value(self) -> float:  # pragma: no cover - provided by the widget
        raise NotImplementedError
