"""Tapes: list with counts, create, delete, copy, matching rules, HAR export and import."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status
from fastapi.responses import StreamingResponse
from wiretape.storage import har
from wiretape.storage import repository as repo
from wiretape.storage.matching import MatchRules

from .. import schemas
from ..deps import SessionDep, SessionsDep, SettingsDep
from ..version import wiretape_version

router = APIRouter(prefix="/tapes", tags=["tapes"])


def _out(t: repo.TapeSummary) -> schemas.TapeOut:
    return schemas.TapeOut(name=t.name, recordings=t.recordings, created_at=t.created_at,
                           updated_at=t.updated_at)


@router.get("", response_model=list[schemas.TapeOut], summary="List tapes")
def list_tapes(s: SessionDep) -> list[schemas.TapeOut]:
    return [_out(t) for t in repo.list_tapes(s)]


@router.post("", response_model=schemas.TapeOut, status_code=status.HTTP_201_CREATED,
             summary="Create a tape", responses={409: {"description": "the tape exists"}})
def create_tape(body: schemas.TapeCreate, s: SessionDep) -> schemas.TapeOut:
    repo.create_tape(s, body.name, body.matching.model_dump() if body.matching else None)
    return _out(repo.tape_summary(s, body.name))


@router.get("/{name}", response_model=schemas.TapeOut, summary="One tape")
def get_tape(name: schemas.TapeParam, s: SessionDep) -> schemas.TapeOut:
    return _out(repo.tape_summary(s, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a tape and its recordings")
def delete_tape(name: schemas.TapeParam, s: SessionDep) -> Response:
    repo.delete_tape(s, name)
    s.info["changed"] = True
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/copy", response_model=schemas.TapeOut,
             status_code=status.HTTP_201_CREATED, summary="Copy a tape",
             responses={409: {"description": "the target tape exists"}})
def copy_tape(name: schemas.TapeParam, body: schemas.TapeCopy, s: SessionDep) -> schemas.TapeOut:
    """A new tape with the same recordings, matching rules and noise (409 if `to` exists)."""
    repo.copy_tape(s, name, body.to)
    s.info["changed"] = True
    return _out(repo.tape_summary(s, body.to))


@router.get("/{name}/matching", response_model=schemas.MatchingRules,
            summary="The tape's matching rules")
def get_matching(name: schemas.TapeParam, s: SessionDep) -> schemas.MatchingRules:
    rules = MatchRules.from_dict(repo.require_tape(s, name).matching)
    return schemas.MatchingRules(**rules.to_dict())


@router.put("/{name}/matching", response_model=schemas.MatchingRules,
            summary="Set the tape's matching rules")
def put_matching(
    name: schemas.TapeParam, body: schemas.MatchingRules, s: SessionDep
) -> schemas.MatchingRules:
    """Replace the rules. The recordings already on the tape are re-keyed under the new
    rules at once: nothing needs recording again."""
    rules = MatchRules.create(**body.model_dump())  # InvalidRule: 422
    repo.set_matching(s, name, rules)
    s.info["changed"] = True
    return schemas.MatchingRules(**rules.to_dict())


HAR_SCHEMA = {
    "type": "object",
    "description": "HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/)",
    "properties": {"log": {"type": "object"}},
    "required": ["log"],
}


@router.get(
    "/{name}/export", summary="Export the tape as HAR 1.2",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {"schema": HAR_SCHEMA}},
                     "description": "the HAR document"}},
)
def export_tape(
    name: schemas.TapeParam, s: SessionDep, sessions: SessionsDep,
    ids: Annotated[bool, Query(description="false: leave out the store's recording ids, "
                               "so two recordings of the same traffic export alike")] = True,
) -> StreamingResponse:
    """Every recording in capture order, bodies readable in a browser's dev tools, with what
    wiretape needs to import them byte for byte under `_wiretape` fields."""
    repo.require_tape(s, name)  # a 404 now, not a broken stream later

    def chunks() -> Iterator[bytes]:
        # its own session: the response streams after the request's transaction is over
        with sessions() as es:
            for chunk in har.TapeExport(es, name, creator_version=wiretape_version(),
                                        ids=ids):
                yield chunk.encode("utf-8")

    return StreamingResponse(
        chunks(), media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.har"'},
    )


@router.post("/{name}/import", response_model=schemas.ImportResult,
             summary="Import a HAR 1.2 document into the tape")
def import_tape(
    name: schemas.TapeParam,
    doc: Annotated[dict[str, Any], Body(
        description="a HAR 1.2 document, e.g. one `GET /api/tapes/{name}/export` gave, "
                    "or a browser's dev tools saved",
        examples=[{"log": {"version": "1.2", "creator": {"name": "me", "version": "1"},
                           "entries": []}}],
    )],
    s: SessionDep,
    settings: SettingsDep,
    replace: Annotated[bool, Query(description="empty the tape first")] = False,
) -> schemas.ImportResult:
    """All or nothing: every entry is checked before anything is stored, and a bad entry
    rejects the whole import (422, naming the entry). Secrets are redacted as for recorded
    traffic; a new (or replaced) tape takes the matching rules the file carries."""
    parsed = har.parse(doc)
    exchanges = [settings.redactor.exchange(ex) for ex in parsed.exchanges]
    ids = repo.import_exchanges(s, name, exchanges, replace=replace, matching=parsed.matching)
    s.info["changed"] = True
    return schemas.ImportResult(tape=name, imported=len(ids), replaced=replace)
