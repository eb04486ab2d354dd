"""otgrid: exact optimal transport in low dimension."""
__version__ = "0.1.0"
