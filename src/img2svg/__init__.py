"""img2svg: turn catalogs of raster images into SVG vectors.

The library is plain Python: the HiDream API client (`img2svg.client`), the local
API-compatible service (`img2svg.service`), the vectorizing engine (`img2svg.engine`) and the
pipeline's stages (`img2svg.stage` → `plan` → `convert` → `finish`), over its stores
(`img2svg.stores`) and shared vocabulary (`img2svg.run`). Prefect lives only in `flows/` and
`tasks/`; imports go one way: flows → tasks → stages → stores → client, engine.
"""

__version__ = "0.1.0"
