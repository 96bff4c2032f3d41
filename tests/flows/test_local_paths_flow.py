"""--allow-local-paths through a real flow run: rows reading outside the manifest's folder are
invalid (and cost no service), an allowed folder makes them plannable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flows.convert import convert
from tests.helpers import logo_png


def test_outside_rows_are_invalid_unless_their_folder_is_allowed(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "logo.png").write_bytes(logo_png(40, seed=1))
    refs = ["../shared/logo.png", f"file://{tmp_path / 'shared' / 'logo.png'}", "/etc/passwd"]
    manifest = catalog / "m.csv"
    pd.DataFrame({"image_url": refs}).to_csv(manifest, index=False)

    state = convert(
        manifest=str(manifest),
        out=str(tmp_path / "out"),
        max_failure_ratio=1.0,
        return_state=True,
    )
    assert state.is_completed(), state.message
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results["status"].tolist() == ["invalid"] * 3
    assert results["error"].str.contains("outside the manifest's folder").all()
    assert results["error"].str.contains("--allow-local-paths").all()
    assert not (tmp_path / "out" / ".img2svg-service").exists()  # nothing to send: no service

    plan = convert(
        manifest=str(manifest),
        out=str(tmp_path / "out"),
        dry_run=True,
        allow_local_paths=[str(tmp_path / "shared")],
        return_state=True,
    ).result()
    assert plan["rows_to_submit"] == 2 and plan["tasks_to_submit"] == 1  # /etc/passwd stays out
