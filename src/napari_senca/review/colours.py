"""Region colours: the default palette and colour conversion."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = [
    "PALETTE",
    "PLAIN_COLOUR",
    "BORDER_COLOUR",
    "BORDER_WIDTH",
    "SELECT_COLOUR",
    "SELECT_WIDTH",
    "selection_borders",
    "H_AND_E",
    "VALUE_COLOURS",
    "MISSING_COLOUR",
    "to_hex",
    "lab",
    "contrast_to_stain",
    "value_rgba",
    "value_colormap",
]

#: Default cluster colours, chosen to stay visible on H&E: bright yellows,
#: greens, oranges, cyans and blues (no purples, pinks or browns, which vanish
#: into haematoxylin and eosin). Every colour is at least 40 CIELAB units
#: (Delta E 1976) from all :data:`H_AND_E` colours (tab10 had 4.5), and the first
#: six stay at least 20 apart also for deuteranopes and protanopes (simulated).
PALETTE = (
    "#ffd400", "#0040ff", "#00d4ff", "#ff6d00", "#000000", "#40ffbf",
    "#00c853", "#ff1744", "#006600", "#99cc33", "#269986", "#76ff03",
    "#ffab00", "#18ffff", "#aeea00", "#00695c",
)  # fmt: skip
#: Colour of spots when there is nothing to colour by (before a run, no labels).
PLAIN_COLOUR = "#f0f0f0"
#: Border of every spot: white reads on haematoxylin purple and eosin pink.
BORDER_COLOUR = "#ffffff"
#: Border width relative to the spot diameter (napari ``border_width_is_relative``).
BORDER_WIDTH = 0.12
#: Border of selected spots: magenta (no region colour is magenta), a third of the diameter.
SELECT_COLOUR = "#ff00ff"
SELECT_WIDTH = 0.3
#: Typical H&E colours: k-means centres of tissue pixels of the HER2ST H&E
#: images A1, B4 and C2, plus textbook eosin pinks and haematoxylin purples.
H_AND_E = (
    "#af9bc1", "#8e7faf", "#ceb9d4", "#67609a", "#413f7e", "#1e1d55", "#d8c3d9",
    "#c2a7c7", "#aa8bb5", "#5a588c", "#2d3165", "#e8a5c4", "#d47fa6", "#f3c9dc",
    "#b5528a", "#4b2c6f", "#7b3f8c",
)  # fmt: skip
#: Colours of the gene / value colour map, low to high: pale yellow to
#: saturated green, never as dark as haematoxylin (viridis' dark end is).
VALUE_COLOURS = ("#ffffcc", "#ffd400", "#00c853")
VALUE_COLORMAP = "senca_values"
#: Colour of spots without a value (NaN, e.g. no confidence for spots assigned by hand).
MISSING_COLOUR = "#9e9e9e"


def lab(colours: Any) -> np.ndarray:
    """CIELAB (D65) coordinates of sRGB colours (names, hex or RGB in 0-1), ``(n, 3)``."""
    from matplotlib.colors import to_rgb

    rgb = np.asarray([to_rgb(c) for c in colours], dtype=np.float64).reshape(-1, 3)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])  # fmt: skip
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d**2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def contrast_to_stain(colours: Any, stain: Any = H_AND_E) -> np.ndarray:
    """Smallest CIELAB distance (Delta E 1976) of each colour to the stain colours."""
    a, b = lab(colours), lab(stain)
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2).min(axis=1)


def value_rgba(fraction: np.ndarray) -> np.ndarray:
    """RGBA of values scaled to 0-1 in the value colour map, ``(n, 4)``."""
    from matplotlib.colors import LinearSegmentedColormap

    cmap = LinearSegmentedColormap.from_list(VALUE_COLORMAP, list(VALUE_COLOURS))
    cmap.set_bad(MISSING_COLOUR)
    f = np.asarray(fraction, dtype=np.float64)
    return np.asarray(cmap(np.ma.masked_invalid(np.clip(f, 0, 1))))


def value_colormap() -> dict[str, Any]:
    """The value colour map as napari accepts it (``Colormap(**dict)``), without importing napari."""
    from matplotlib.colors import to_rgba

    n = len(VALUE_COLOURS)
    return {
        "name": VALUE_COLORMAP,
        "colors": [list(to_rgba(c)) for c in VALUE_COLOURS],
        "controls": [i / (n - 1) for i in range(n)],
    }


def to_hex(colour: Any) -> str:
    """Normalise a colour (name, hex, RGB/RGBA tuple in 0-1 or 0-255) to ``#rrggbb``.

    Raises
    ------
    ConfigError
        When ``colour`` is not a colour.
    """
    from matplotlib.colors import to_hex as _mpl_to_hex

    c = colour
    if isinstance(c, (tuple, list, np.ndarray)):
        arr = np.asarray(c, dtype=float).ravel()
        if arr.size in (3, 4) and arr.max(initial=0) > 1.0:
            arr = arr / 255.0
        c = tuple(np.clip(arr, 0, 1))
    try:
        return str(_mpl_to_hex(c, keep_alpha=False))
    except (ValueError, TypeError):
        raise ConfigError(f"{colour!r} is not a colour (use a name such as 'red' or a hex code)") from None


def selection_borders(
    n_spots: int, selected: Any, shown: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-spot border colours ``(n, 4)`` and relative widths ``(n,)``.

    White borders, a thick magenta ring on ``selected`` spots, and transparent
    borders on spots that are not ``shown``.
    """
    from matplotlib.colors import to_rgba

    colours = np.tile(to_rgba(BORDER_COLOUR), (int(n_spots), 1))
    widths = np.full(int(n_spots), BORDER_WIDTH)
    idx = np.asarray([int(i) for i in selected if 0 <= int(i) < n_spots], dtype=np.int64)
    colours[idx] = to_rgba(SELECT_COLOUR)
    widths[idx] = SELECT_WIDTH
    if shown is not None and len(shown) == n_spots:
        colours[~np.asarray(shown, dtype=bool), 3] = 0.0
    return colours, widths
