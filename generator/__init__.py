"""tinygen: a trained model in, a complete TFLite-Micro firmware project out."""

__version__ = "0.1.0"
