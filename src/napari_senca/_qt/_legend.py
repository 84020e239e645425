"""Legend table (show, colour, name, spot count per region) and colour bar of the Review dock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qtpy.QtCore import QPointF, QSize, Qt
from qtpy.QtGui import QColor, QIcon, QLinearGradient, QPainter, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["LegendTable", "ColourBar", "swatch", "SHOW", "COLOUR", "NAME", "COUNT", "MAX_ROWS"]

#: Columns of the legend.
SHOW, COLOUR, NAME, COUNT = 0, 1, 2, 3
#: Rows shown without scrolling; longer legends scroll.
MAX_ROWS = 12
ID_ROLE = Qt.ItemDataRole.UserRole


def swatch(colour: str, size: int = 14) -> QIcon:
    """A square icon of one colour with a thin grey frame (white and yellow stay visible)."""
    pm = QPixmap(size, size)
    pm.fill(QColor(colour))
    p = QPainter(pm)
    p.setPen(QColor("#808080"))
    p.drawRect(0, 0, size - 1, size - 1)
    p.end()
    return QIcon(pm)


def _item(text: str = "", key: str | None = None, editable: bool = False) -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
    if editable:
        flags |= Qt.ItemFlag.ItemIsEditable
    it.setFlags(flags)
    if key is not None:
        it.setData(ID_ROLE, key)
    return it


class LegendTable(QTableWidget):
    """One row per region (or pathologist label before a run).

    Columns: a "show" check box, the colour swatch, the name (editable for
    regions) and the spot count. It holds no state: the Review widget fills it
    with :meth:`show_regions` or :meth:`show_labels` and listens to its signals.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setHorizontalHeaderLabels(["show", "", "region", "spots"])
        self.verticalHeader().setVisible(False)
        hh = self.horizontalHeader()
        for col, mode in ((SHOW, QHeaderView.ResizeMode.ResizeToContents),
                          (COLOUR, QHeaderView.ResizeMode.ResizeToContents),
                          (NAME, QHeaderView.ResizeMode.Stretch),
                          (COUNT, QHeaderView.ResizeMode.ResizeToContents)):  # fmt: skip
            hh.setSectionResizeMode(col, mode)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.mode = "regions"

    def show_regions(self, rows: Sequence[tuple[str, str, str, int, bool]], swatches: bool = True) -> None:
        """Fill with ``(id, name, colour, n_spots, visible)`` rows; no swatches when coloured by a value."""
        self.mode = "regions"
        self.setHorizontalHeaderLabels(["show", "", "region", "spots"])
        self.setColumnHidden(SHOW, False)
        self.setColumnHidden(COLOUR, not swatches)
        self.setRowCount(len(rows))
        for i, (cid, name, colour, n, visible) in enumerate(rows):
            show = _item("", cid)
            show.setFlags(show.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            show.setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
            show.setToolTip("show or hide the spots of this region")
            sw = _item("", cid)
            sw.setIcon(swatch(colour))
            sw.setToolTip(f"{colour} (double-click to change)")
            nm = _item(name, cid, editable=True)
            nm.setToolTip(f"cluster id {cid}: click to select its spots, double-click to rename")
            cnt = _item(str(n), cid)
            cnt.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            for col, it in ((SHOW, show), (COLOUR, sw), (NAME, nm), (COUNT, cnt)):
                self.setItem(i, col, it)
        self._fit()

    def show_labels(self, rows: Sequence[tuple[str, str, int]]) -> None:
        """Fill with the pathologist labels ``(label, colour, n_spots)`` (read only)."""
        self.mode = "labels"
        self.setHorizontalHeaderLabels(["show", "", "pathologist label", "spots"])
        self.setColumnHidden(SHOW, True)
        self.setColumnHidden(COLOUR, False)
        self.setRowCount(len(rows))
        for i, (label, colour, n) in enumerate(rows):
            sw = _item("", label)
            sw.setIcon(swatch(colour))
            nm = _item(label, label)
            nm.setToolTip("label from the section's labels file (obs['label'])")
            cnt = _item(str(n), label)
            cnt.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            for col, it in ((COLOUR, sw), (NAME, nm), (COUNT, cnt)):
                self.setItem(i, col, it)
        self._fit()

    def key(self, row: int) -> str | None:
        """The region id (or label) of a row."""
        it = self.item(row, NAME)
        return None if it is None else it.data(ID_ROLE)

    def _fit(self) -> None:
        """Tall enough for every row up to :data:`MAX_ROWS` (then it scrolls)."""
        rows = max(2, min(self.rowCount(), MAX_ROWS))
        h = self.horizontalHeader().sizeHint().height() + rows * self.verticalHeader().defaultSectionSize()
        self.setMinimumHeight(h + 2 * self.frameWidth() + 2)
        self.setMaximumHeight(max(h + 2 * self.frameWidth() + 2, self.minimumHeight()))


class _Gradient(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colours: list[str] = []
        self.setMinimumHeight(16)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(200, 16)

    def paintEvent(self, event: Any) -> None:
        p = QPainter(self)
        r = self.rect().adjusted(0, 0, -1, -1)
        g = QLinearGradient(QPointF(r.left(), 0), QPointF(r.right(), 0))
        n = max(len(self.colours) - 1, 1)
        for i, c in enumerate(self.colours):
            g.setColorAt(i / n, QColor(c))
        p.fillRect(r, g)
        p.setPen(QColor("#808080"))
        p.drawRect(r)
        p.end()


class ColourBar(QWidget):
    """The colour scale of a gene or value: title, gradient, min and max."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.gradient = _Gradient(self)
        self.lo_label = QLabel("")
        self.hi_label = QLabel("")
        self.hi_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        ends = QHBoxLayout()
        ends.setContentsMargins(0, 0, 0, 0)
        ends.addWidget(self.lo_label)
        ends.addStretch(1)
        ends.addWidget(self.hi_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.title)
        lay.addWidget(self.gradient)
        lay.addLayout(ends)

    def set_scale(self, title: str, lo: float, hi: float, colours: Sequence[str]) -> None:
        """Show ``title`` over a gradient of ``colours`` from ``lo`` to ``hi``."""
        self.title.setText(f"<b>Spots coloured by</b> {title}")
        self.lo_label.setText(f"≤ {lo:.3g}")
        self.hi_label.setText(f"≥ {hi:.3g}")
        self.gradient.colours = list(colours)
        self.gradient.update()
