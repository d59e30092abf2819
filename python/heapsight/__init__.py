"""heapsight: find, explain and fix memory leaks in Python web applications."""

from heapsight._heapsight import __version__

__all__ = ["__version__"]
