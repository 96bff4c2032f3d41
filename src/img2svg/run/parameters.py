"""What a run is asked to do: one typed list of parameters, written once.

The conversion flow's signature and docstring (so its deployment form in the Prefect UI), the
CLI's `img2svg convert` options and the shard flow's spec are all made from `RunParameters`:
adding a parameter means adding a field here (and, if its flag needs a metavar, a word in the
CLI). Constraints (`ge=1`, choices) live in the types, so the flow, the UI and the CLI refuse
the same values.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SHARED_LIMIT = "img2svg-submissions"
"""The Prefect global concurrency limit every submission to a remote API takes a slot of."""
SHARD_DEPLOYMENT = "img2svg-shard/img2svg-shard"
"""The deployment a shard of a split run runs as (`flows/shards.py`, in prefect.yaml)."""

Positive = Annotated[int, Field(ge=1)]


class RunParameters(BaseModel):
    """Convert every image of a manifest to SVG."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest: str = Field(
        description="CSV or Parquet file (local path or fsspec URL) with one image per row."
    )
    out: str = Field(
        "out",
        description="Output directory or fsspec URL for svgs/, results.parquet/.csv, "
        "failures.csv and report.html.",
    )
    mode: Literal["fast", "slow"] = Field(
        "fast", description="fast: small files; slow: higher fidelity."
    )
    api_url: str | None = Field(
        None,
        description="Base URL of a HiDream-compatible API (else $HIDREAM_API_URL); none and no "
        "token = the embedded local service. A token is only ever sent to its own API: naming "
        "another one fails the run, and nothing is sent.",
    )
    token_block: str | None = Field(
        None,
        description="Prefect block holding the API token, instead of $HIDREAM_API_TOKEN: a "
        "HiDreamCredentials block (img2svg.blocks; NAME or hidream-credentials/NAME) binds the "
        'token to its api_url; a Secret block holding JSON {"api_url": ..., "token": ...} to '
        "that API, a plain token to HiDream.",
    )
    image_column: str = Field(
        "image_url",
        description="Manifest column with the image URL, path (relative to the manifest) or "
        "data: URI.",
    )
    id_column: str | None = Field(
        None,
        description="Manifest column with unique row ids; default: a stable hash of the image.",
    )
    version_column: str | None = Field(
        None,
        description="Manifest column that changes when an image URL's content does (etag, "
        "updated_at, checksum): with the URL, it tells an unchanged image without any network.",
    )
    fingerprint: Literal["url", "head"] = Field(
        "url",
        description="How an image URL is told unchanged: url (the URL and version column) or "
        "head (also a HEAD request's ETag / Last-Modified for each URL).",
    )
    chunk_size: Positive = Field(
        10_000,
        description="Rows per chunk: the unit one Prefect task stages, plans, submits or polls.",
    )
    batch_size: Positive | None = Field(
        None, description="Deprecated name of chunk_size; when given, it is used as chunk_size."
    )
    concurrency: Positive = Field(8, description="HTTP requests in flight at once across the run.")
    rate_limit: Annotated[float, Field(ge=0)] | None = Field(
        None,
        description="Submissions per minute; default 20 (HiDream) for a remote API, none for "
        "the embedded service; 0 = no limit.",
    )
    max_in_flight: Positive | None = Field(
        None,
        description="Tasks in flight on the API at once (HiDream: 1 to 10 by account tier); "
        "default: learned from its 429 answers.",
    )
    poll_timeout: Annotated[float, Field(gt=0)] = Field(
        600.0, description="Seconds a submitted row may take before it is timed_out."
    )
    max_failure_ratio: Annotated[float, Field(ge=0, le=1)] = Field(
        0.25,
        description="The run ends Failed (the CLI exits 1) when more than this share of rows "
        "did not succeed.",
    )
    force: bool = Field(
        False,
        description="Convert every row again, even images unchanged since they last succeeded "
        "(pays for every task again).",
    )
    dry_run: bool = Field(
        False, description="Only count what would be submitted (the cost); submit nothing."
    )
    limit: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description="Submit at most this many new tasks in this run; the other rows are "
        "`skipped` and the next run continues with them.",
    )
    resubmit_unconfirmed: bool = Field(
        False,
        description="Submit again the `unconfirmed` rows (sent earlier, answer lost, maybe "
        "billed) and nothing else; first check the account's task list for them.",
    )
    order_by: str | None = Field(
        None,
        description="Manifest column whose order decides which rows are submitted first when "
        "limit or the quota cannot take them all (a stable sort: ties keep the manifest's "
        "order; the first row of an image still leads its duplicates).",
    )
    descending: bool = Field(False, description="Sort order_by from the largest value down.")
    notify_url: str | None = Field(
        None,
        description="Public URL of an `img2svg receive` callback receiver (else "
        "$IMG2SVG_NOTIFY_URL): each submission asks the API to POST its end to URL/<token>, "
        "which recovers tasks whose answer was lost, with no new submission.",
    )
    callback_grace: Annotated[float, Field(ge=0)] = Field(
        1800.0,
        description="Seconds a submission whose answer was lost waits for its callback "
        "(with notify_url) before it stays `unconfirmed`.",
    )
    submission_limit: str | None = Field(
        SHARED_LIMIT,
        description="Prefect global concurrency limit (used as a rate limit) that every "
        "submission to a remote API takes a slot of, so all runs of all deployments together "
        "keep to the API's quota; ignored when it does not exist.",
    )
    allow_local_paths: list[str] | None = Field(
        None,
        description="Folders local images may be read from besides the manifest's own; a row "
        "naming a local file anywhere else is invalid, never read.",
    )
    ledger: str | None = Field(
        None,
        description="The record of what was submitted and paid: a SQLite path (default: beside "
        "the outputs) or postgresql://user@host/db shared by every machine (default: "
        "$IMG2SVG_LEDGER_URL). A password never becomes a parameter: the CLI keeps one given "
        "here in its own environment; workers use PGPASSWORD, ~/.pgpass or ledger_block.",
    )
    ledger_block: str | None = Field(
        None, description="Prefect Secret block holding the ledger's URL (instead of ledger)."
    )
    shards: Positive = Field(
        1,
        description="Split the catalog into this many shards, each a flow run of the shard "
        "deployment on the work pool (any free worker, any machine); needs a PostgreSQL ledger "
        "and an out (and manifest) every worker reaches. limit is shared out between them.",
    )
    shard_deployment: str = Field(
        SHARD_DEPLOYMENT, description='The deployment the shards run as ("flow/deployment").'
    )
    score: bool = Field(
        True,
        description="Score every new SVG against its source (ssim, psnr, paths; flags such as "
        "low_fidelity) for the results and report.html; false saves the CPU it takes.",
    )

    @model_validator(mode="after")
    def _one_chunk_size(self) -> RunParameters:
        both = self.batch_size is not None and "chunk_size" in self.model_fields_set
        if both and self.batch_size != self.chunk_size:
            raise ValueError("give chunk_size only (batch_size is its deprecated name)")
        return self

    @property
    def rows_per_chunk(self) -> int:
        """chunk_size, or the deprecated batch_size when a caller still gives it."""
        return self.chunk_size if self.batch_size is None else self.batch_size


class ShardSpec(BaseModel):
    """What one shard of a split run is given: the parent's parameters, with what the parent
    decided pinned (its API, the ledger without its password, the shard's share of the limit
    and quota), and which shard of how many it is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parameters: RunParameters
    shard: Annotated[int, Field(ge=0)]
    shards: Positive
    run_id: str = Field(description="The parent flow run's id: names the shards' parts.")
    embedded: bool = Field(
        False,
        description="The parent runs on the local engine: the shard starts its own service "
        "whatever its worker's environment holds.",
    )


def flow_signature(model: type[BaseModel], returns: Any) -> inspect.Signature:
    """The model's fields as a function's keyword parameters, constraints in their types: what
    Prefect reads to build a flow's parameter form and to validate a call."""
    parameters = []
    for name, field in model.model_fields.items():
        annotation = (
            Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
        )
        default = inspect.Parameter.empty if field.is_required() else field.default
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
    return inspect.Signature(parameters, return_annotation=returns)


def flow_docstring(model: type[BaseModel]) -> str:
    """The model's docstring with an `Args:` section of its field descriptions (Prefect shows
    them beside each parameter)."""
    lines = [inspect.getdoc(model) or "", "", "Args:"]
    lines += [f"    {name}: {field.description}" for name, field in model.model_fields.items()]
    return "\n".join(lines)


def takes(model: type[BaseModel], returns: Any) -> Any:
    """Decorate `def f(**given)`: its signature and docstring become the model's, so Prefect
    (and `help`) see every parameter, while the body builds the model from what it was given."""

    def decorate(fn: Any) -> Any:
        fn.__signature__ = flow_signature(model, returns)
        fn.__doc__ = flow_docstring(model)
        fn.__annotations__ = {}
        return fn

    return decorate
