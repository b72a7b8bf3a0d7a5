"""A client module that fails while being imported."""

raise RuntimeError("broken at import time")
