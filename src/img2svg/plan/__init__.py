"""Stage 2: fingerprint each chunk's images and decide, with the ledger, what each row needs before
anything is spent."""
