"""The vectorizing engine: validate and decode images, trace them to SVG, score the result.

Names are loaded on first use (PEP 562): importing `img2svg.engine.errors` or
`img2svg.engine.decode` must not pull in vtracer, pebble or scikit-image, which the service's
request path and every spawned worker would otherwise pay for.

The scoring function is not re-exported: `img2svg.engine.fidelity` is its module's name, and
a package attribute cannot be both. Use `from img2svg.engine.fidelity import fidelity`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from img2svg.engine.decode import DecodeLimits, decode_image, probe_image
    from img2svg.engine.errors import (
        BadDimensions,
        ConversionCrashed,
        ConversionFailed,
        ConversionTimeout,
        EngineError,
        ImageRejected,
        NotAnImage,
        OutputTooLarge,
        TruncatedImage,
    )
    from img2svg.engine.fidelity import Fidelity, render_svg
    from img2svg.engine.pool import VectorizerPool
    from img2svg.engine.presets import PRESETS, Mode, Preset
    from img2svg.engine.trace import EngineLimits, vectorize

_EXPORTS: dict[str, str] = {
    "DecodeLimits": "decode",
    "decode_image": "decode",
    "probe_image": "decode",
    "EngineError": "errors",
    "ImageRejected": "errors",
    "NotAnImage": "errors",
    "TruncatedImage": "errors",
    "BadDimensions": "errors",
    "ConversionFailed": "errors",
    "ConversionTimeout": "errors",
    "ConversionCrashed": "errors",
    "OutputTooLarge": "errors",
    "Fidelity": "fidelity",
    "render_svg": "fidelity",
    "VectorizerPool": "pool",
    "PRESETS": "presets",
    "Mode": "presets",
    "Preset": "presets",
    "EngineLimits": "trace",
    "vectorize": "trace",
}

__all__ = [
    "PRESETS",
    "BadDimensions",
    "ConversionCrashed",
    "ConversionFailed",
    "ConversionTimeout",
    "DecodeLimits",
    "EngineError",
    "EngineLimits",
    "Fidelity",
    "ImageRejected",
    "Mode",
    "NotAnImage",
    "OutputTooLarge",
    "Preset",
    "TruncatedImage",
    "VectorizerPool",
    "decode_image",
    "probe_image",
    "render_svg",
    "vectorize",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
