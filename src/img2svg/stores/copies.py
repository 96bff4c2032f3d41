"""Where an intact copy of a succeeded submission's SVG is, if one is left in the output."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from img2svg.stores.ledger import Ledger, Submission
from img2svg.stores.outputs import OutputStore


def intact_copy(
    past: Submission, ledger: Ledger, outputs: OutputStore, first: Sequence[str] = ()
) -> tuple[str, int] | None:
    """(relative path, size) of an intact copy of a succeeded submission's SVG, if one is left;
    `first`: relative paths to try before the ledger's.

    A copy whose size and mtime are those recorded when it was written is intact without being
    read; any other is read and hashed."""
    if not past.svg_sha256:
        return None
    candidates = [(path, None, None) for path in first]
    if past.svg_path:
        candidates.append((past.svg_path, None, None))
    candidates += [(r.svg_path, r.svg_size, r.svg_mtime_ns) for r in ledger.rows_of(past.key)]
    for path, size, mtime_ns in candidates:
        relative = relative_svg_path(path)
        if size is not None and outputs.unchanged(relative, size, mtime_ns):
            return relative, size
        data = outputs.read_bytes(relative)
        if data is not None and hashlib.sha256(data).hexdigest() == past.svg_sha256:
            return relative, len(data)
    return None


def relative_svg_path(path: str) -> str:
    """Ledgers of earlier versions recorded absolute locations; today's record `svgs/<id>.svg`."""
    marker = "svgs/"
    return path[path.rindex(marker) :] if marker in path else path
