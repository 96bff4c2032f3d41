"""Prefect tasks of the conversion flow: thin wrappers over `img2svg.pipeline`."""
