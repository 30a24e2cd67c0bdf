"""Diffs: recording against recording, tape against tape, and the noise they leave out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from wiretape.drift import compare
from wiretape.drift.kinds import ReportFormat
from wiretape.drift.render import render_junit, render_text

from .. import schemas
from ..deps import SessionDep

router = APIRouter(tags=["drift"])


@router.get("/recordings/{a}/diff/{b}", response_model=schemas.RecordingDiffOut,
            summary="Diff two recordings")
def recording_diff(a: schemas.RecordingId, b: schemas.RecordingId, s: SessionDep,
                   strict: schemas.Strict = False) -> Any:
    """Status, headers (names case-insensitive; Date, Content-Length and hop-by-hop headers
    ignored) and body (JSON structurally, text by lines, binary by digest) of `a`'s
    response against `b`'s. Unless `strict`, the tapes' noise is left out."""
    return compare.recording_diff(s, a, b, strict).to_dict()


@router.get("/tapes/{a}/diff/{b}", response_model=schemas.TapeDiffOut, summary="Diff two tapes",
            responses={200: {"content": {"text/plain": {}, "application/xml": {}}}})
def tape_diff(a: schemas.TapeParam, b: schemas.TapeParam, s: SessionDep,
              strict: schemas.Strict = False,
              format: schemas.Format = ReportFormat.JSON) -> Any:
    """Tape `a` (baseline) against tape `b`, paired by match key and seq: recordings only in
    B (`added`) or only in A (`removed`), changed pairs with their changes, the unchanged
    count, status class changes, p50/p95 latency per endpoint and error rates."""
    result = compare.tape_diff(s, a, b, strict)
    if format is ReportFormat.TEXT:
        return PlainTextResponse(render_text(result))
    if format is ReportFormat.JUNIT:
        return Response(render_junit(result, f"wiretape diff {a} {b}"),
                        media_type="application/xml")
    return result.to_dict()


@router.get("/tapes/{name}/noise", response_model=schemas.NoiseOut, summary="A tape's noise")
def get_noise(name: schemas.TapeParam, s: SessionDep) -> Any:
    """What diffs and audits leave out unless strict: patterns like
    `response.body.meta.request_id`, `response.body.items[*].updated_at`,
    `response.headers.x-request-id` (`$.x` is short for `response.body.x`)."""
    return compare.noise_view(s, name)


@router.put("/tapes/{name}/noise", response_model=schemas.NoiseOut, summary="Set a tape's noise")
def put_noise(name: schemas.TapeParam, body: schemas.NoiseUpdate, s: SessionDep) -> Any:
    return compare.set_noise(s, name, body.manual, body.detected)
