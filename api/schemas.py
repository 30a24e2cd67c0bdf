"""Pydantic schemas of the admin API (separate from the ORM models), and its parameter types.

Over 400 lines on purpose: every shape the API reads or answers is declared here, in the
order of the routes, so the OpenAPI document has one source.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from wiretape.drift.audit.report import AuditReport
from wiretape.drift.changes import ChangeKind
from wiretape.drift.kinds import DEFAULT_FAIL_ON, DriftClass, ReportFormat
from wiretape.drift.tapes import TapeEntry
from wiretape.storage.exchange import FailureKind, Mode, OnMiss, Truncation
from wiretape.storage.headers import HEADER_VALUE_PATTERN, METHOD_MAX, TOKEN_PATTERN
from wiretape.storage.names import TAPE_NAME_HELP, TAPE_NAME_MAX, TAPE_NAME_PATTERN

# the store's one tape-name rule (storage/names.py), as schema constraints
TapeName = Annotated[str, StringConstraints(pattern=TAPE_NAME_PATTERN, max_length=TAPE_NAME_MAX)]
TapeQuery = Query(pattern=TAPE_NAME_PATTERN, max_length=TAPE_NAME_MAX, description="tape name")
TapePath = Path(pattern=TAPE_NAME_PATTERN, max_length=TAPE_NAME_MAX, description=TAPE_NAME_HELP,
                examples=["default"])
TapeParam = Annotated[str, TapePath]
INT32 = 2**31 - 1
RecordingId = Annotated[int, Path(ge=1, le=INT32, description="recording id", examples=[1])]
AuditId = Annotated[int, Path(ge=1, le=INT32, description="audit id", examples=[1])]
Strict = Annotated[bool, Query(description="keep noise (timestamps, request ids) in the verdict")]
Format = Annotated[ReportFormat,
                   Query(description="json (default), text (read at a glance) or junit (CI)")]

NO_NUL = r"^[^\x00]*$"

# header names and methods are RFC 9110 tokens; values what HTTP/1 can carry (storage/headers.py)
HeaderName = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN, min_length=1,
                                              max_length=256)]
HeaderValue = Annotated[str, StringConstraints(pattern=HEADER_VALUE_PATTERN, max_length=16384)]
Header = tuple[HeaderName, HeaderValue]
Headers = Annotated[list[Header], Field(max_length=500)]
Method = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN, min_length=1,
                                          max_length=METHOD_MAX)]
Status = Annotated[int, Field(ge=100, le=599)]
Reason = Annotated[str, StringConstraints(pattern=HEADER_VALUE_PATTERN, max_length=255)]
Note = Annotated[str, StringConstraints(pattern=NO_NUL, max_length=10_000)]


def LimitQuery(default: int) -> Any:  # noqa: N802 - reads like the Query it returns
    return Query(ge=1, le=1000, description=f"at most this many items (default {default})")


# -- system ------------------------------------------------------------------------------

class Health(BaseModel):
    status: str
    mode: str
    tape: str
    version: str
    proxy: str | None = Field(None, description="HOST:PORT the proxy listens on (as bound)")
    admin: str | None = Field(None, description="HOST:PORT the admin API listens on (as bound)")


class ModeState(BaseModel):
    mode: Mode
    tape: str
    on_miss: OnMiss


class ModeUpdate(BaseModel):
    """Any of the three; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None
    tape: TapeName | None = None
    on_miss: OnMiss | None = None


class ReplayReset(BaseModel):
    reset: bool
    generation: int


class MissOut(BaseModel):
    id: int
    tape: str
    at: datetime
    request: dict[str, str]
    closest: list[dict[str, Any]]


# -- recordings --------------------------------------------------------------------------

class Body(BaseModel):
    """A body as people read it: JSON as JSON, UTF-8 text as text, anything else base64.
    Always decoded: gzip, br and deflate are undone for display and redone when stored."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"encoding": "json", "content": {"id": 1}},
                                        {"encoding": "text", "content": "hello"}]},
    )

    encoding: Literal["json", "text", "base64"]
    content: Any = None

    @model_validator(mode="after")
    def _content_fits_encoding(self) -> Body:
        if self.encoding != "json" and not isinstance(self.content, str):
            raise ValueError(f"content must be a string when encoding is {self.encoding!r}")
        return self


class RecordingItem(BaseModel):
    id: int
    tape: str
    seq: int
    method: str
    url: str
    status: int | None = Field(description="null when the upstream failed (no response)")
    duration_ms: float
    recorded_at: datetime
    request_size: int
    response_size: int
    content_type: str
    last_verified_at: datetime | None = Field(
        default=None, description="when a drift audit last compared it with the live upstream")
    last_verdict: str | None = Field(
        default=None, description="that audit's verdict: ok, breaking, additive, value, "
        "latency, or refreshed (re-recorded)")


class RecordingPage(BaseModel):
    items: list[RecordingItem]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next (older) page; null on the last page"
    )


class RequestOut(BaseModel):
    method: str
    url: str
    http_version: str
    headers: list[tuple[str, str]]
    body: Body


class ChunkOut(BaseModel):
    """One chunk of a streamed response as it arrived."""

    index: int
    offset_ms: float = Field(description="when it arrived, in ms since the request was sent")
    size: int = Field(description="bytes, as they came (still compressed if the body is)")
    encoding: Literal["text", "base64"] | None = Field(
        default=None, description="how `content` is given; null when it is not shown (a chunk "
        "over 4 KiB, or of a body too big to show)")
    content: str | None = None


class ResponseOut(BaseModel):
    status: int
    reason: str
    http_version: str
    headers: list[tuple[str, str]]
    body: Body
    size: int = Field(0, description="bytes of the body as stored (still compressed if it is)")
    body_complete: bool = Field(
        True, description="false when `body` shows only the first 64 KiB of a body too big "
        "to show whole; GET /api/recordings/{id}/body gives all of it")
    chunks: list[ChunkOut] | None = Field(
        default=None, description="a streamed response's chunks in order, with when each "
        "came; null when the response was not streamed")
    head_ms: float | None = Field(
        default=None, description="streamed: when the head came, in ms since the request")
    truncated: Truncation | None = Field(
        default=None, description="streamed: why it was stored before its end (client: the "
        "client left; shutdown: wiretape stopped; upstream: the upstream broke off)")


class FailureOut(BaseModel):
    kind: FailureKind
    message: str


class RecordingOut(BaseModel):
    id: int
    tape: str
    seq: int
    match_key: str
    recorded_at: datetime
    duration_ms: float
    note: str
    request: RequestOut
    response: ResponseOut | None = Field(description="null when the upstream failed")
    failure: FailureOut | None = Field(description="how the upstream failed, if it did")


class RecordingPatch(BaseModel):
    """Edit the recorded response. Content-Length follows the new body; the body is stored
    encoded with the (new) headers' Content-Encoding, so replay sends consistent bytes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"status": 200, "body": {"encoding": "json", "content": {"price": 0}},
             "note": "free for the demo"},
        ]},
    )

    status: Status | None = None
    headers: Headers | None = None
    body: Body | None = None
    note: Note | None = None


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method = "GET"
    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s\x00]+$", max_length=8192)]
    headers: Headers = []
    body: Body | None = None


class ResponseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status = 200
    reason: Reason | None = None
    headers: Headers = []
    body: Body | None = None


class FailureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FailureKind
    message: Note = ""


class RecordingCreate(BaseModel):
    """A hand-written recording: a request and the response (or failure) to replay for it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "tape": "default",
            "request": {"method": "GET", "url": "http://orders:8080/orders/42"},
            "response": {"status": 200, "headers": [["Content-Type", "application/json"]],
                         "body": {"encoding": "json", "content": {"id": 42}}},
        }]},
    )

    tape: TapeName = "default"
    request: RequestIn
    response: ResponseIn | None = None
    failure: FailureIn | None = None
    duration_ms: Annotated[float, Field(ge=0, le=86_400_000)] = 0.0
    note: Note = ""

    @model_validator(mode="after")
    def _one_outcome(self) -> RecordingCreate:
        if (self.response is None) == (self.failure is None):
            raise ValueError("give either a response or a failure")
        return self


class DeleteResult(BaseModel):
    deleted: int


# -- tapes -------------------------------------------------------------------------------

class MatchingRules(BaseModel):
    """What makes two requests the same request on this tape (on top of method and path)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "ignore_query": ["_ts"], "ignore_body_paths": ["$.timestamp", "$.items[*].id"],
            "match_headers": ["x-tenant"], "ignore_host": False,
        }]},
    )

    ignore_query: Annotated[
        list[Annotated[str, StringConstraints(pattern=NO_NUL, max_length=200)]],
        Field(max_length=100),
    ] = []
    ignore_body_paths: Annotated[
        list[Annotated[str, StringConstraints(max_length=500)]], Field(max_length=100)
    ] = []
    match_headers: Annotated[list[HeaderName], Field(max_length=100)] = []
    ignore_host: bool = False


class TapeOut(BaseModel):
    name: str
    recordings: int
    created_at: datetime
    updated_at: datetime


class TapeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TapeName
    matching: MatchingRules | None = None


class TapeCopy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: TapeName


class ImportResult(BaseModel):
    tape: str
    imported: int
    replaced: bool


class FreshnessSummary(BaseModel):
    verified: int = Field(description="recordings a drift audit has compared with the live "
                                      "upstream")
    never_verified: int
    oldest_verified_at: datetime | None
    newest_verified_at: datetime | None
    verdicts: dict[str, int] = Field(
        description="verified recordings per last verdict (ok, breaking, additive, value, "
                    "latency, refreshed)", examples=[{"ok": 40, "breaking": 2}])


class LastAudit(BaseModel):
    id: int
    status: str = Field(description="running, done or failed")
    started_at: datetime | None
    finished_at: datetime | None
    fail_on: str
    passed: bool | None = Field(description="nothing at or above fail_on drifted; null "
                                            "while running or when the audit failed")
    recordings: int = Field(description="recordings audited (0 while running)")
    drifted: int
    verdicts: dict[str, int] = Field(description="recordings per verdict")


class TapeOverview(BaseModel):
    """A tape at a glance: what the web UI's tapes page shows for each tape."""

    name: str
    recordings: int
    created_at: datetime
    updated_at: datetime
    matching: MatchingRules
    last_audit: LastAudit | None
    freshness: FreshnessSummary
# -- diffs, noise, audits and freshness -------------------------------------------

class ChangeOut(BaseModel):
    path: str = Field(examples=["response.body.items[0].price"])
    kind: ChangeKind
    old: Any = None
    new: Any = None


class RecordingDiffOut(BaseModel):
    identical: bool
    changes: list[ChangeOut]
    ignored: int = Field(description="differences left out as noise (0 with strict)")


class PairKey(BaseModel):
    """Which recordings of the two tapes were paired: one match key and seq in both."""

    match_key: str
    seq: int
    endpoint: str
    a_id: int
    b_id: int


class PairOut(PairKey):
    url: str
    changes: list[ChangeOut]
    ignored: int


class StatusClassChangeOut(PairKey):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str


class TapeDiffOut(BaseModel):
    identical: bool
    added: list[TapeEntry] = Field(description="recordings only in B")
    removed: list[TapeEntry] = Field(description="recordings only in A")
    changed: list[PairOut]
    unchanged: int
    status_class_changes: list[StatusClassChangeOut]
    latency: list[dict[str, Any]] = Field(description="p50/p95 duration_ms per endpoint")
    error_rate: dict[str, Any]
    noise: dict[str, Any]


class NoiseOut(BaseModel):
    tape: str
    manual: list[str] = Field(
        description="patterns given by hand, for every endpoint",
        examples=[["response.body.timestamp", "response.headers.x-request-id"]])
    detected: dict[str, list[str]] = Field(
        description="per endpoint: learned by audits from two live answers, and found among "
                    "the tape's recordings of one key")


class NoiseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manual: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = Field(
        default=None, max_length=1000, description="replaces the hand-written patterns")
    detected: dict[str, list[str]] | None = Field(
        default=None, description="replaces what audits learned ({} forgets it)")


class AuditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    headers: dict[str, str] = Field(
        default_factory=dict, description="sent with every request, e.g. credentials that "
        "redaction removed; stored by name only", examples=[{"Authorization": "Bearer …"}])
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds per request")
    strict: bool = False
    fail_on: DriftClass = DEFAULT_FAIL_ON
    refresh: bool = Field(default=False, description="re-record what drifted")
    verify_tls: bool = True


class AuditStarted(BaseModel):
    id: int
    tape: str
    status: str
    url: str


# an audit and its results: drift/audit/report.py's AuditReport and AuditResult
AuditOut = AuditReport


class AuditListItem(BaseModel):
    id: int
    status: str
    trigger: str
    started_at: datetime | None
    finished_at: datetime | None
    fail_on: str
    summary: dict[str, Any]


class FreshnessItem(BaseModel):
    id: int
    method: str
    url: str
    status: int | None
    last_verified_at: datetime | None
    last_verdict: str | None = Field(description="ok, a drift class, or refreshed")
    last_matched_at: datetime | None = Field(description="last audit that found no drift")


class FreshnessOut(BaseModel):
    tape: str
    recordings: list[FreshnessItem]


class RecordingAuditOut(BaseModel):
    audit_id: int
    audit_status: str
    verdict: str
    findings: list[dict[str, Any]]
    live_status: int | None
    live_failure: str | None
    refreshed: bool
    checked_at: datetime | None


# -- errors ------------------------------------------------------------------------------

class ErrorOut(BaseModel):
    detail: str


class ValidationErrorOut(BaseModel):
    detail: str = Field(description="what is wrong, in one line")
    errors: list[dict[str, Any]] = Field(
        default=[], description="each problem with where it is (`loc`), as pydantic found it"
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong bearer token (with --token)"},
    403: {"model": ErrorOut, "description": "a cross-site request (Origin, Sec-Fetch-Site) "
                                            "that would change something"},
    404: {"model": ErrorOut, "description": "unknown recording id or tape"},
    415: {"model": ErrorOut, "description": "a request that changes something without "
                                            "Content-Type: application/json"},
    421: {"model": ErrorOut, "description": "a Host this admin API does not answer to "
                                            "(see --admin-host)"},
    422: {"model": ValidationErrorOut, "description": "invalid input"},
}
