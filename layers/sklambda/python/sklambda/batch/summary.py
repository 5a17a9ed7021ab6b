"""What a batch job reports: its running counts (Tally) and its summary (JobSummary), the JSON written beside its
outputs at scored/<source>/<path>.summary.json (keys.py).

Plain data: no I/O and no other batch module, so that errors.py (BatchJobFailed carries the summary) can import it
without a cycle. The summary is built in one place, `Job.summary` (job.py).

Counts: every summary has rows_read == rows_scored + rows_rejected (rows_scored counts rows the model scored, also
when the job failed and published none of them; outputs.scored says whether a scored file was published).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

SUCCEEDED, FAILED, SUPERSEDED = "succeeded", "failed", "superseded"


@dataclass
class Tally:
    """What a job, or one chunk of it, has counted so far; the scoring loop adds to it batch by batch.

    rows_read == rows_scored + rows_rejected after every batch of rows. `physical_lines` are the input lines read
    (a quoted CSV field may span lines; errors files number lines, so a merge offsets each chunk's by the lines
    before it). `data_quality_warnings`: scored values unlike the training data, per check code
    (sklambda.serving.data_quality). `model_version` and `reject_threshold` are set once the model is loaded
    (before that the summary shows no version and the configured threshold). `chunks` and `chunk_seconds` are
    those of a merged fan-out job (the summary's duration when the merge was given no start time).
    """

    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    physical_lines: int = 0
    data_quality_warnings: Counter[str] = field(default_factory=Counter)
    model_version: str | None = None
    reject_threshold: float | None = None
    chunks: int = 1
    chunk_seconds: float = 0.0


@dataclass(frozen=True)
class JobSummary:
    """The outcome of one batch job, as written to its summary key (`to_dict`) and returned to the handlers.

    `status` is SUCCEEDED, FAILED or SUPERSEDED (a newer upload of the key published first; this summary is then
    written to the superseded record instead, `summary_key` names it). Rates are per second of `duration_seconds`
    (monotonic clock). Raises ValueError when the counts do not add up (a bug, never the input's fault).
    """

    job_id: str
    status: str
    input_bucket: str
    input_key: str
    input_version_id: str | None
    input_etag: str | None
    model_name: str
    model_alias: str | None
    model_version: str | None
    format: str
    rows_read: int
    rows_scored: int
    rows_rejected: int
    reject_threshold: float
    duration_seconds: float
    output_bucket: str
    scored_key: str | None
    errors_key: str | None
    summary_key: str
    chunks: int = 1
    failure_reason: str | None = None
    report: str | None = None
    # Scored rows' values unlike the training data, per check (serving.data_quality): scored anyway, counted here.
    data_quality_warnings: dict[str, int] = field(default_factory=dict)
    input_sequencer: str | None = None
    superseded_by: str | None = None  # status superseded: the sequencer of the newer upload already published

    def __post_init__(self) -> None:
        if self.rows_read != self.rows_scored + self.rows_rejected:
            raise ValueError(
                f"job {self.job_id}: rows do not add up: {self.rows_read} read != {self.rows_scored} scored + "
                f"{self.rows_rejected} rejected"
            )

    @property
    def reject_rate(self) -> float:
        """Rejected rows / rows read, in [0, 1]; 0.0 when no row was read."""
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of the job's duration; 0.0 for a job that took no measurable time."""
        return self.rows_read / self.duration_seconds if self.duration_seconds > 0 else 0.0

    @property
    def failure(self) -> str:
        """`<reason>: <report>` of a failed job, "" otherwise (for exception messages and logs)."""
        return f"{self.failure_reason}: {self.report}" if self.failure_reason else ""

    def to_dict(self) -> dict:
        """The summary's JSON document: the public format of summary.json (fields change only with a version).

        Rates are rounded (reject_rate to 6 places, duration to ms, rows/s to 0.1); `failure` and `superseded_by`
        are null unless the status says so.
        """
        return {
            "job_id": self.job_id,
            "status": self.status,
            "input": {
                "bucket": self.input_bucket,
                "key": self.input_key,
                "version_id": self.input_version_id,
                "etag": self.input_etag,
                "sequencer": self.input_sequencer,
            },
            "model": {"name": self.model_name, "alias": self.model_alias, "version": self.model_version},
            "format": self.format,
            "rows_read": self.rows_read,
            "rows_scored": self.rows_scored,
            "rows_rejected": self.rows_rejected,
            "reject_rate": round(self.reject_rate, 6),
            "reject_threshold": self.reject_threshold,
            "duration_seconds": round(self.duration_seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "chunks": self.chunks,
            "data_quality_warnings": dict(self.data_quality_warnings),
            "outputs": {
                "bucket": self.output_bucket,
                "scored": self.scored_key,
                "errors": self.errors_key,
                "summary": self.summary_key,
            },
            "failure": {"reason": self.failure_reason, "report": self.report} if self.failure_reason else None,
            "superseded_by": {"sequencer": self.superseded_by} if self.status == SUPERSEDED else None,
        }
