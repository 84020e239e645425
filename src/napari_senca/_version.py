from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-senca")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"
