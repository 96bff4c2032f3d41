"""The conversion pipeline's building blocks, free of Prefect: manifest, batches, outputs."""
