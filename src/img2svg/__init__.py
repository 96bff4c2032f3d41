"""img2svg: turn catalogs of raster images into SVG vectors.

The library is plain Python: the HiDream API client (`img2svg.client`), the local
API-compatible service (`img2svg.service`), the vectorizing engine (`img2svg.engine`) and the
pipeline's building blocks (`img2svg.pipeline`). Prefect lives only in `flows/` and `tasks/`.
"""

__version__ = "0.1.0"
