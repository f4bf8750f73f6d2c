"""tunepool: several teams share one GPU pool to fine-tune and serve transformer models."""

__version__ = "0.1.0"
