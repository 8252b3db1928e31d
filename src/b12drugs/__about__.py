"""Version of the b12drugs core distribution (single source for the build)."""

__version__ = "0.1.0"
