"""`perfkit top`: a live terminal view of an app or a fleet through its monitor endpoints or store."""

from perfkit.top.frame import Frame
from perfkit.top.source import HttpSource, Sample, StoreSource

__all__ = ["Frame", "HttpSource", "Sample", "StoreSource"]
