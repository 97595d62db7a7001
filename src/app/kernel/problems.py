"""Every error leaves the edge as RFC 9457 problem details with a stable ``code``."""

from __future__ import annotations

import logging
import math
import re
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, get_args

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    InternalServerException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.utils.scope.state import ScopeState

from app.kernel.context import current_context
from contracts import AwareDateTime, ContractError, DependencyUnavailable, FieldError, Throttled, in_utc

if TYPE_CHECKING:
    from litestar.types import ExceptionHandlersMap

__all__ = (
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "exception_handlers",
    "problem_response",
    "problem_responses",
    "query_moment",
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:tessera:problem:"

log = logging.getLogger("tessera.errors")

# Stable codes for failures the framework detects before any module code runs.
_HTTP_CODES: dict[type[HTTPException], str] = {
    NotAuthorizedException: "auth.unauthorized",
    PermissionDeniedException: "auth.forbidden",
    NotFoundException: "http.not_found",
    MethodNotAllowedException: "http.method_not_allowed",
    RequestEntityTooLarge: "http.payload_too_large",
    TooManyRequestsException: Throttled.code,
}


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem details document, with Tessera's extension members."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    correlation_id: str | None = None
    errors: list[FieldError] | None = None


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    problem = Problem(
        type=f"{TYPE_PREFIX}{code}",
        title=title or HTTPStatus(status).phrase,
        status=status,
        code=code,
        detail=detail,
        instance=request.url.path,
        correlation_id=current_context().correlation_id,
        errors=errors,
    )
    return Response(problem, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _contract_error(request: Request[Any, Any, Any], exc: ContractError) -> Response[Problem]:
    errors = getattr(exc, "errors", None)  # InvalidInput's fields; a probe's failed modules
    headers = None
    if isinstance(exc, DependencyUnavailable | Throttled):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=errors,
        headers=headers,
    )


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = _every_body_field_error(request) or [
        FieldError(
            field=(field := str(item.get("key") or item.get("source") or "request")),
            message=_in_words(str(item["message"]), _parameter_description(request, field)),
        )
        for item in (exc.extra if isinstance(exc.extra, list) else [])
        if isinstance(item, dict) and "message" in item
    ]
    return problem_response(
        request,
        status=422,
        code="request.validation_failed",
        title="The request is not valid",
        detail="; ".join(f"{e.field}: {e.message}" for e in errors) or None,
        errors=errors,
    )


# What Litestar raises when the client goes away before its body has arrived (an
# InternalServerException, but nothing failed here: a proxy in front cut the upload short, say).
_CLIENT_GONE = "client disconnected prematurely"


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    if isinstance(exc, InternalServerException) and exc.detail == _CLIENT_GONE:
        log.info(
            "the client went away before its request body ended: %s %s", request.method, request.url.path
        )
        return problem_response(
            request, status=400, code="request.incomplete", detail="The request body ended early."
        )
    status = exc.status_code
    if status >= 500:
        log.error("%s on %s %s", exc, request.method, request.url.path, exc_info=exc)
    code = next(
        (code for kind, code in _HTTP_CODES.items() if isinstance(exc, kind)),
        f"http.{HTTPStatus(status).name.lower()}",
    )
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="tessera"')
    if status == 429 and "RateLimit-Reset" in headers:  # Litestar's rate limit says when, in its words
        headers.setdefault("Retry-After", str(max(1, int(headers["RateLimit-Reset"]))))
    detail = exc.detail if exc.detail and exc.detail != HTTPStatus(status).phrase else None
    return problem_response(request, status=status, code=code, detail=detail, headers=headers)


# What Litestar's JSON body decoding lets through unconverted, and what it means: the body
# is bad, not the server (litestar.serialization.decode_json turns only msgspec's DecodeError
# into a 400).
_UNREADABLE_BODY = {
    UnicodeDecodeError: "The body is not valid UTF-8.",
    RecursionError: "The body is nested too deeply.",
}


def _raised_decoding_the_body(exc: Exception) -> bool:
    frame = exc.__traceback__
    while frame is not None:
        code = frame.tb_frame.f_code
        if code.co_name == "decode_json" and "litestar" in code.co_filename:
            return True
        frame = frame.tb_next
    return False


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if type(exc) in _UNREADABLE_BODY and _raised_decoding_the_body(exc):
        return problem_response(
            request, status=400, code="http.bad_request", detail=_UNREADABLE_BODY[type(exc)]
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        status=500,
        code="server.internal_error",
        detail="An unexpected error occurred; quote the correlation id when reporting it.",
    )


def exception_handlers() -> ExceptionHandlersMap:
    return {
        ContractError: _contract_error,
        ValidationException: _validation_error,
        HTTPException: _http_error,
        Exception: _unexpected_error,
    }


def problem_responses(*failures: type[ContractError] | int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems a route can answer with (contract errors or statuses).

    Every route may answer 400 for a body or parameter it cannot parse; declaring it here
    replaces the plain-JSON 400 entry Litestar would otherwise document.
    """
    described: dict[int, list[str]] = {400: ["The request cannot be parsed"]}
    for failure in failures:
        if isinstance(failure, int):
            described.setdefault(failure, []).append(HTTPStatus(failure).phrase)
        else:
            described.setdefault(failure.status, []).append(f"`{failure.code}`: {failure.title}")
    return {
        status: ResponseSpec(
            data_container=Problem,
            description="; ".join(texts),
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status, texts in described.items()
    }


def _every_body_field_error(request: Request[Any, Any, Any]) -> list[FieldError]:
    """All the invalid fields of a JSON body, where msgspec stops at the first.

    Litestar has already parsed the body (it is cached in the scope); each field is
    checked on its own against the handler's ``data`` Struct.
    """
    data_field = request.route_handler.parsed_data_field
    body = ScopeState.from_scope(request.scope).json
    if data_field is None or not isinstance(data_field.annotation, type):
        return []
    struct_type = data_field.annotation
    if not issubclass(struct_type, msgspec.Struct):
        return []
    if not isinstance(body, dict):
        return [FieldError(field="body", message="Expected a JSON object")]
    return struct_field_errors(struct_type, body)


def struct_field_errors(struct_type: type[msgspec.Struct], raw: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    known: set[str] = set()
    for info in msgspec.structs.fields(struct_type):
        known.add(info.encode_name)
        if info.encode_name not in raw:
            if info.required:
                errors.append(FieldError(field=info.encode_name, message="Field is required"))
            continue
        try:
            msgspec.convert(raw[info.encode_name], info.type, strict=False)
        except msgspec.ValidationError as exc:
            message = _in_words(str(exc).split(" - at ", 1)[0], _meta_description(info.type))
            errors.append(FieldError(field=info.encode_name, message=message))
    if struct_type.__struct_config__.forbid_unknown_fields:
        errors.extend(FieldError(field=name, message="Unknown field") for name in raw if name not in known)
    return errors


_PATTERN_MISSED = re.compile(r"Expected `str` matching regex '.*'", re.DOTALL)


def _in_words(message: str, description: str | None) -> str:
    """msgspec's message, but a pattern missed is said in words, never as the regular expression.

    The words are the field's or parameter's description ("an e-mail address").
    """
    if not _PATTERN_MISSED.fullmatch(message):
        return message
    return f"Expected {description}" if description else "Expected text in the form the API document gives"


def _meta_description(field_type: Any) -> str | None:
    return next(
        (m.description for m in get_args(field_type)[1:] if isinstance(m, msgspec.Meta) and m.description),
        None,
    )


def _parameter_description(request: Request[Any, Any, Any], name: str) -> str | None:
    parameter = request.route_handler.parsed_fn_signature.parameters.get(name)
    kwarg = getattr(parameter, "kwarg_definition", None)
    description = getattr(kwarg, "description", None)
    return description if isinstance(description, str) else None


def query_moment(text: str, *, field: str) -> datetime:
    """A query parameter's date-time, read as the API document says: RFC 3339, with its offset.

    (Litestar would read a datetime parameter from a bare number too, and without its offset.)
    Anything else is a 422 naming ``field``.
    """
    try:
        return in_utc(msgspec.convert(text, AwareDateTime), field=field)
    except msgspec.ValidationError:
        message = "Expected an RFC 3339 date-time with its UTC offset (Z or +hh:mm)"
    except ValueError as overflow:
        message = str(overflow).partition(": ")[2]
    raise ValidationException(message, extra=[{"key": field, "message": message}])
