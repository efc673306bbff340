"""AgenticLabeling: auto-labeling for computer vision as a gRPC model-serving mesh."""

__version__ = "0.1.0"
__all__ = ["__version__"]
