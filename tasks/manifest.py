"""Read the manifest once, up front: a malformed one fails the run before anything is spent."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from img2svg.pipeline.manifest import Manifest, read_manifest


@task(name="load-manifest", cache_policy=NO_CACHE)
def load_manifest(path: str, image_column: str, id_column: str | None) -> Manifest:
    return read_manifest(path, image_column=image_column, id_column=id_column)
