"""Give every row of a succeeded job its own SVG file, restoring any that went missing.

A job's SVG is downloaded once, for its lead row; the rows that share the image (duplicates in
the manifest, in any chunk) and the rows whose SVG an earlier run wrote get theirs here, at the
end of the run. A row's file that is as the ledger recorded it (size and mtime) is left alone
without being read; anything else is rewritten from an intact copy of the same SVG.
"""

from __future__ import annotations

import hashlib

from img2svg.stores.copies import intact_copy
from img2svg.stores.ledger import Ledger, RowWrite
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import Workspace


def fan_out_chunk(workspace: Workspace, ledger: Ledger, outputs: OutputStore, chunk: int) -> int:
    """Write what is missing for the chunk's rows; returns how many files were written."""
    rows = workspace.rows_of_succeeded_jobs(chunk)
    records = ledger.rows([r["row_id"] for r in rows])
    sources: dict[str, bytes | None] = {}
    written: list[RowWrite] = []
    broken: list[tuple[str, str]] = []
    for row in rows:
        row_id, key, digest = row["row_id"], row["key"], row["svg_sha256"]
        relative = f"svgs/{row_id}.svg"
        record = records.get(row_id)
        if (
            record is not None
            and record.svg_sha256 == digest
            and outputs.unchanged(relative, record.svg_size, record.svg_mtime_ns)
        ):
            continue
        current = outputs.read_bytes(relative) if record is not None else None
        if current is not None and hashlib.sha256(current).hexdigest() == digest:
            size, mtime_ns = outputs.stat(relative)  # intact, only its stat is new
            written.append((row_id, key, relative, digest, size, mtime_ns))
            continue
        if key not in sources:
            sources[key] = _intact_source(key, row["lead_row_id"], ledger, outputs)
        data = sources[key]
        if data is None:
            broken.append((row_id, "the SVG was converted but no intact copy is left to write"))
            continue
        outputs.write_svg(row_id, data)
        size, mtime_ns = outputs.stat(relative)
        written.append((row_id, key, relative, digest, size, mtime_ns))
    if written:
        ledger.record_rows(written)
    if broken:
        workspace.mark_rows(broken)
    return len(written)


def _intact_source(
    key: str, lead_row_id: str, ledger: Ledger, outputs: OutputStore
) -> bytes | None:
    past = ledger.submission(key)
    if past is None:
        return None
    found = intact_copy(past, ledger, outputs, first=[f"svgs/{lead_row_id}.svg"])
    return outputs.read_bytes(found[0]) if found is not None else None
