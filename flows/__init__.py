"""Prefect flows of img2svg."""
