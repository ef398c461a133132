"""xrseg: gaze-driven Segment Anything for AR/VR.

from xrseg import SamEngine
engine = SamEngine.from_cache()
embedding = engine.encode(rgb)                      # HxWx3 uint8 RGB, once per keyframe
prediction = engine.decode(embedding, points=[[320.0, 240.0]], labels=[1])
mask = prediction.masks[prediction.best]            # HxW bool
"""

from __future__ import annotations

from xrseg.errors import XrsegError

__version__ = "0.1.0"

__all__ = ["ImageEmbedding", "MaskPrediction", "SamEngine", "XrsegError", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy so that `import xrseg` stays cheap (no onnxruntime) for the command line and light tools.
    if name in ("SamEngine", "ImageEmbedding", "MaskPrediction"):
        import importlib

        return getattr(importlib.import_module("xrseg.sam.engine"), name)
    raise AttributeError(f"module 'xrseg' has no attribute {name!r}")
