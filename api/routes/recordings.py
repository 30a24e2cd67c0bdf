"""Recordings: list with filters and cursor paging, the whole exchange, edit, delete, add."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import object_session
from wiretape.storage import codec, edit
from wiretape.storage import models as m
from wiretape.storage import repository as repo
from wiretape.storage.bodies import PREVIEW_SIZE
from wiretape.storage.errors import InvalidInput
from wiretape.storage.exchange import Exchange, Failure
from wiretape.storage.exchange import Response as StoredResponse
from wiretape.storage.headers import METHOD_MAX, TOKEN_PATTERN
from wiretape.storage.times import as_utc

from .. import schemas
from ..deps import FlushedWrites, SessionDep, SessionsDep, SettingsDep

router = APIRouter(prefix="/recordings", tags=["recordings"])


class InvalidCursor(InvalidInput):
    """A `cursor` that no page handed out."""


# -- the cursor: opaque to clients, the last id of the page inside -----------------------

def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        version, _, value = raw.partition(":")
        if version != "v1" or not value.isdigit():
            raise ValueError(cursor)
        last_id = int(value)
        if not 0 < last_id < 2**31:
            raise ValueError(cursor)
        return last_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidCursor(
            "cursor is not valid: pass the next_cursor of a previous page unchanged"
        ) from e


# -- filters shared by the list and delete-by-filter -------------------------------------

def _filters(
    tape: Annotated[str | None, schemas.TapeQuery] = None,
    method: Annotated[str | None, Query(pattern=TOKEN_PATTERN, max_length=METHOD_MAX,
                                        description="HTTP method")] = None,
    host: Annotated[str | None, Query(pattern=schemas.NO_NUL, max_length=255,
                                      description="host, exactly")] = None,
    path: Annotated[str | None, Query(pattern=schemas.NO_NUL, max_length=2048,
                                      description="path prefix, e.g. /api/orders")] = None,
    status: Annotated[int | None, Query(ge=100, le=599, description="response status")] = None,
    q: Annotated[str | None, Query(pattern=schemas.NO_NUL, min_length=1, max_length=200,
                                   description="text in the request or response body "
                                               "(decoded, case-insensitive)")] = None,
    since: Annotated[datetime | None, Query(description="recorded at or after "
                                                        "(ISO 8601; UTC if no zone)")] = None,
    until: Annotated[datetime | None, Query(description="recorded before")] = None,
) -> repo.RecordingFilter:
    return repo.RecordingFilter(tape=tape, method=method, host=host, path=path,
                                status=status, q=q, since=since, until=until)


# -- views -------------------------------------------------------------------------------

CHUNK_SHOWN = 4096  # bytes: a chunk's content is shown up to this size


def _chunks_out(r: StoredResponse) -> list[schemas.ChunkOut] | None:
    if r.stream is None:
        return None
    stream = r.stream.fitted(r.size)
    out = []
    start = 0
    for i, (offset, n) in enumerate(stream.chunks):
        chunk = schemas.ChunkOut(index=i, offset_ms=offset, size=n)
        if r.big is None and n <= CHUNK_SHOWN:
            data = r.body[start:start + n]
            try:
                chunk.encoding, chunk.content = "text", data.decode("utf-8")
            except UnicodeDecodeError:
                chunk.encoding = "base64"
                chunk.content = base64.b64encode(data).decode("ascii")
        out.append(chunk)
        start += n
    return out


def response_out(row: m.Recording, r: StoredResponse) -> schemas.ResponseOut:
    body, complete = r.body, True
    if r.big is not None:  # too big to show whole: its first bytes
        s = object_session(row)
        body = repo.body_head(s, row.id, PREVIEW_SIZE) if s is not None else b""
        complete = False
    return schemas.ResponseOut(
        status=r.status, reason=r.reason, http_version=r.http_version,
        headers=list(r.headers), body=schemas.Body(**codec.body_view(r.headers, body)),
        size=r.size, body_complete=complete, chunks=_chunks_out(r),
        head_ms=r.stream.head_ms if r.stream is not None else None,
        truncated=r.stream.truncated if r.stream is not None else None,
    )


def recording_out(row: m.Recording, tape: str) -> schemas.RecordingOut:
    ex = repo.row_exchange(row)
    req = ex.request
    response = None
    if ex.response is not None:
        response = response_out(row, ex.response)
    failure = None
    if ex.failure is not None:
        failure = schemas.FailureOut(kind=ex.failure.kind, message=ex.failure.message)
    return schemas.RecordingOut(
        id=row.id, tape=tape, seq=row.seq, match_key=row.match_key,
        recorded_at=as_utc(row.recorded_at), duration_ms=row.duration_ms, note=row.note,
        request=schemas.RequestOut(
            method=req.method, url=req.url, http_version=req.http_version,
            headers=list(req.headers),
            body=schemas.Body(**codec.body_view(req.headers, req.body)),
        ),
        response=response, failure=failure,
    )


def _bytes(body: schemas.Body | None) -> bytes:
    return codec.body_from_view(body.model_dump() if body is not None else None)


# -- routes ------------------------------------------------------------------------------

FilterDep = Annotated[repo.RecordingFilter, Depends(_filters)]


@router.get("", response_model=schemas.RecordingPage, summary="List recordings",
            dependencies=[FlushedWrites])
def list_recordings(
    s: SessionDep,
    f: FilterDep,
    limit: Annotated[int, schemas.LimitQuery(50)] = 50,
    cursor: Annotated[str | None, Query(max_length=100, description="next_cursor of the "
                                        "previous page")] = None,
) -> schemas.RecordingPage:
    """Newest first (descending `id`). Pages are cut by id, not by offset, so walking the
    pages while recordings are being added never skips or repeats one: new recordings
    have higher ids and land before the first page."""
    before = decode_cursor(cursor) if cursor else None
    rows = repo.list_recordings(s, f, limit + 1, before)
    more = len(rows) > limit
    rows = rows[:limit]
    return schemas.RecordingPage(
        items=[schemas.RecordingItem(
            id=r.id, tape=r.tape, seq=r.seq, method=r.method, url=r.url, status=r.status,
            duration_ms=r.duration_ms, recorded_at=r.recorded_at,
            request_size=r.request_size, response_size=r.response_size,
            content_type=r.content_type, last_verified_at=r.last_verified_at,
            last_verdict=r.last_verdict,
        ) for r in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


@router.delete("", response_model=schemas.DeleteResult, summary="Delete recordings by filter")
def delete_recordings(s: SessionDep, f: FilterDep) -> schemas.DeleteResult:
    """Delete every recording the filters select (the same filters as the list). At least
    one filter is required; to empty a whole tape, filter by `tape`."""
    if f.is_empty():
        raise HTTPException(
            422, "give at least one filter (tape, method, host, path, status, q, since, until)"
        )
    n = repo.delete_recordings(s, f)
    s.info["changed"] = True
    return schemas.DeleteResult(deleted=n)


@router.post("", response_model=schemas.RecordingOut, status_code=status.HTTP_201_CREATED,
             summary="Add a hand-written recording")
def create_recording(
    body: schemas.RecordingCreate, s: SessionDep, settings: SettingsDep, response: Response
) -> schemas.RecordingOut:
    """Add a recording to a tape (created if missing). Bodies are given decoded and stored
    with the headers' Content-Encoding; Content-Length is set to match. Secrets are redacted
    as for recorded traffic."""
    req = body.request
    request = edit.new_request(req.method, req.url, tuple(req.headers), _bytes(req.body))
    answer, failure = None, None
    if body.response is not None:
        r = body.response
        answer = edit.new_response(r.status, tuple(r.headers), _bytes(r.body), r.reason)
    else:
        assert body.failure is not None
        failure = Failure(body.failure.kind, body.failure.message)
    ex = Exchange(request, answer, failure, time.time_ns(), body.duration_ms, body.note)
    rid = repo.import_exchanges(s, body.tape, [settings.redactor.exchange(ex)])[0]
    s.info["changed"] = True
    response.headers["Location"] = f"/api/recordings/{rid}"
    return recording_out(repo.get_recording(s, rid), body.tape)


@router.get("/{rid}", response_model=schemas.RecordingOut, summary="The whole exchange",
            dependencies=[FlushedWrites])
def get_recording(rid: schemas.RecordingId, s: SessionDep) -> schemas.RecordingOut:
    """Request and response with headers in order and bodies decoded for reading
    (gzip, br and deflate undone; JSON as JSON, text as text, anything else base64)."""
    row = repo.get_recording(s, rid)
    return recording_out(row, row.tape.name)


@router.get(
    "/{rid}/body", summary="The whole response body, as stored",
    response_class=StreamingResponse, dependencies=[FlushedWrites],
    responses={200: {"content": {"application/octet-stream": {}},
                     "description": "the body's bytes (still compressed if it is)"}},
)
def get_response_body(rid: schemas.RecordingId, s: SessionDep,
                      sessions: SessionsDep) -> StreamingResponse:
    """The recorded response body byte for byte, as replay sends it (a body too big to show
    in the detail view is read from the store a few parts at a time). Always an
    attachment of type application/octet-stream: recorded content is never rendered here."""
    row = repo.get_recording(s, rid)
    ex = repo.row_exchange(row)
    body = ex.response.body if ex.response is not None else b""
    big = ex.response is not None and ex.response.big is not None

    def parts() -> Iterator[bytes]:
        if not big:
            yield body
            return
        # its own session: the response streams after the request's transaction is over
        with sessions() as es:
            yield from repo.iter_body(es, rid)

    return StreamingResponse(parts(), media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="recording-{rid}.body"',
        "X-Content-Type-Options": "nosniff",
    })


@router.patch("/{rid}", response_model=schemas.RecordingOut, summary="Edit the response")
def patch_recording(
    rid: schemas.RecordingId, body: schemas.RecordingPatch, s: SessionDep, settings: SettingsDep
) -> schemas.RecordingOut:
    """Change the recorded response's `status`, `headers` (the whole list) or `body` (given
    decoded, in the same shape the detail view shows), and the `note`. Replay serves the
    edit at once. Leaving `Content-Encoding` out of new headers stores the body plain."""
    row = repo.get_recording(s, rid)
    stored = repo.row_exchange(row)
    ex = edit.edit_exchange(
        stored, status=body.status,
        headers=tuple(body.headers) if body.headers is not None else None,
        body=_bytes(body.body) if body.body is not None else None, name=f"recording {rid}",
    )
    if ex is not stored:  # what is edited is redacted like recorded traffic
        ex = settings.redactor.exchange(ex)
    row = repo.replace_response(s, row, ex, note=body.note)
    s.info["changed"] = True
    return recording_out(row, row.tape.name)


@router.delete("/{rid}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a recording")
def delete_recording(rid: schemas.RecordingId, s: SessionDep) -> Response:
    repo.delete_recording(s, rid)
    s.info["changed"] = True
    return Response(status_code=status.HTTP_204_NO_CONTENT)
