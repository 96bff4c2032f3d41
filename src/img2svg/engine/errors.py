"""Why a picture could not be vectorized.

The engine speaks in these exceptions only; the service maps each one to a documented API error
code and the pipeline to a row status. Every exception carries a reason a person can act on.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class: the input or the conversion was refused, never a bug in the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImageRejected(EngineError):
    """The bytes are not an image we are willing to decode."""


class NotAnImage(ImageRejected):
    """Pillow does not recognise the bytes as any image format."""


class TruncatedImage(ImageRejected):
    """The header is fine but the pixel data ends early or is corrupt."""


class BadDimensions(ImageRejected):
    """Zero-sized, or more pixels than the configured bound (a decompression bomb)."""


class ConversionFailed(EngineError):
    """Decoding worked but tracing did not: crash, timeout, memory or output bound."""


class ConversionTimeout(ConversionFailed):
    """The worker ran past its time limit and was killed."""


class ConversionCrashed(ConversionFailed):
    """The worker process died (abort, segfault, out of memory) while tracing."""


class OutputTooLarge(ConversionFailed):
    """The SVG exceeded the configured byte bound (noise-like inputs do this)."""
