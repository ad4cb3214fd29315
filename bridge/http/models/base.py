"""What every request and answer model shares: strict request bases, the error body, and the two
parsers (a JSON body, a query string) that turn pydantic's refusals into 400/422 naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from starlette.requests import Request

from bridge.errors import BadRequest, ValidationFailed
from bridge.frames import ErrorCode

M = TypeVar("M", bound=BaseModel)

ROOM_ID_PATTERN = r"^rm_[A-Za-z0-9_-]{16}$"
UTTERANCE_ID_PATTERN = r"^ut_[A-Za-z0-9_-]{11}$"
# the position after a room in a listing: its created_at (seconds) and id; any such value is a position
CURSOR_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,20})?~[A-Za-z0-9_-]{1,64}$"
PROFILE_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # a kiosk profile (bridge/settings/kiosk.py)
PATH_PATTERNS = {"room_id": ROOM_ID_PATTERN, "uid": UTTERANCE_ID_PATTERN,  # every path parameter of the API
                 "name": PROFILE_NAME_PATTERN}
MAX_CURSOR = 2**62  # the largest numeric cursor (?after=, ?before=) a store gives out


class Request_(BaseModel):
    """A request body or query: unknown fields are refused, and no coercion ("600" is not 600)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(Request_):
    """A query string: values are strings, so "5" is 5 (and "+5", " 5", "1e2" are not: see :data:`Digits`);
    unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore", strict=False, populate_by_name=True)


class Answer(BaseModel):
    """An answer body. ``omit_unset``: fields the handler did not give are left out, not null."""

    omit_unset: ClassVar[bool] = False


def _integral(value: Any) -> Any:
    """JSON Schema's integer: 600.0 is one (the schema allows it, so the handler takes it); "600" is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def only_digits(value: Any) -> Any:
    """A query integer is plain ASCII digits: "+5", " 5", "5_0", "1e2" are not integers."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be an integer (digits only)")
    return value


Integer = Annotated[int, BeforeValidator(_integral)]
Digits = Annotated[int, BeforeValidator(only_digits)]


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every error: ``{"error": {code, message, details?}}``."""

    error: ErrorDetail


def problems(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]


async def parse_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model`` (an empty body is ``{}``); 400 if it is not JSON, 422 if it
    does not fit."""
    raw = await request.body()
    try:
        # pydantic's JSON parser (jiter) stops at a nesting depth of 200 with a json_invalid error,
        # so a deeply nested body is a 400 here, never a RecursionError.
        return model.model_validate_json(raw or b"{}")  # no body at all is {}; whitespace is not JSON
    except ValidationError as exc:
        invalid = next((e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"), None)
        if invalid is not None:  # jiter's message names the problem and its position, never the input
            raise BadRequest(f"the body is not valid JSON ({invalid['msg']})") from None
        raise ValidationFailed("the body does not match the schema", details=problems(exc)) from None


def parse_query(values: Mapping[str, str], model: type[M]) -> M:
    """Query parameters as ``model``; 422 naming the bad one."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        details = [{"loc": ["query", *p["loc"]], "msg": p["msg"]} for p in problems(exc)]
        names = ", ".join(dict.fromkeys(str(d["loc"][1]) for d in details if len(d["loc"]) > 1))
        raise ValidationFailed(f"bad query parameter: {names}", details=details) from None


def answer_body(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as ``model`` says it (validated, by its JSON names): the one shape ``/openapi.json`` shows."""
    omit = bool(getattr(model, "omit_unset", False))
    return model.model_validate(data).model_dump(mode="json", by_alias=True, exclude_unset=omit)
