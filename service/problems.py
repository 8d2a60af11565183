"""Errors as the service answers them: one JSON shape (`Problem`), the right status, no stack trace.

401 no or bad token; 404 an unknown job (or another token's); 409 an answer the job does not wait
for (naming what it takes); 422 a bad value (naming the field); 429 over a per-user limit;
500 only "internal error" (the details go to the log, redacted).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from graph.api import BadInput, NotAllowed, StorybotError, redact
from service.schemas import Problem

log = logging.getLogger("storybot.service")


class Refused(HTTPException):
    """An HTTPException that carries a `Problem` body."""

    def __init__(self, status: int, problem: Problem) -> None:
        super().__init__(status, problem.error)
        self.problem = problem


def invalid(field: str, why: str) -> Refused:
    return Refused(422, Problem(error=why, field=field))


def conflict(why: str, expected: list[str]) -> Refused:
    return Refused(409, Problem(error=why, expected=expected))


def _json(status: int, problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem.model_dump(exclude_none=True), status_code=status, headers=headers)


def _bare(path: str) -> bool:
    """Signed links and job pages refuse with a bare 404 whatever is wrong: a link's holder learns nothing."""
    return path in ("/", "/files", "/jobs") or path.startswith(("/files/", "/jobs/"))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _bare(request.url.path) and exc.status_code in (404, 405):
        return PlainTextResponse("Not found", status_code=404)
    problem = exc.problem if isinstance(exc, Refused) else Problem(error=str(exc.detail))
    return _json(exc.status_code, problem, dict(exc.headers or {}))


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    """The first thing wrong, with its field named as the request had it (`duration`, `shots.0`)."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if not errors:
        return _json(422, Problem(error="the request is not valid"))
    first = errors[0]
    where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    if first.get("type") == "json_invalid":
        return _json(422, Problem(error="the body is not valid JSON", field="body"))
    field = ".".join(where) or "body"
    return _json(422, Problem(error=f"{field}: {first.get('msg', 'invalid')}", field=field))


async def _bad_input(request: Request, exc: Exception) -> JSONResponse:
    status = 404 if isinstance(exc, NotAllowed) else 422
    return _json(status, Problem(error=redact(str(exc))))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StorybotError):
        return _json(500, Problem(error=redact(str(exc))))
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, redact(str(exc))[:300])
    return _json(500, Problem(error="internal error"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(BadInput, _bad_input)
    app.add_exception_handler(Exception, _unexpected)
