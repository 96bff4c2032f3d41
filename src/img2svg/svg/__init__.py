"""SVG documents as the project stores and serves them: untrusted input made safe to open."""

from img2svg.svg.sanitize import Sanitized, sanitize_svg

__all__ = ["Sanitized", "sanitize_svg"]
