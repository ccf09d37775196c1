"""kodev: the edit-to-running loop for Go services built the way ko builds them."""

__version__ = "0.1.0"
