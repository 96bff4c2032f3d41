"""Prefect tasks of the conversion flow: thin wrappers over the stage packages of `img2svg`."""
