"""quicktune: which pretrained image model to fine-tune, and how (Quick-Tune, Arango et al. 2024)."""

__version__ = "0.1.0"
