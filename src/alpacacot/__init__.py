"""alpacacot: the unified, traceable collection of instruction-tuning datasets."""

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def __getattr__(name: str):
    # `alpacacot.load` pulls in `datasets`; keep `import alpacacot` itself light.
    if name == "load":
        from alpacacot.loading import load

        return load
    raise AttributeError(f"module 'alpacacot' has no attribute {name!r}")
