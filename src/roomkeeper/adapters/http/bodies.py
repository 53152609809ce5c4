"""Request bodies: strict JSON decoding from the raw bytes (R11).

Decisions, also stated in the OpenAPI description:
- A JSON body is accepted with ``Content-Type: application/json`` (any parameters) or
  with no Content-Type at all, so that ``curl --data`` without ``-H`` works; any other
  media type gets 415 ``unsupported_media_type``.
- The bytes must be UTF-8 (no BOM, no UTF-16/32 sniffing), one JSON value, without
  duplicate object keys, NaN/Infinity or lone surrogates; otherwise 400 ``invalid_json``.
  What the value must look like is the core parser's business.
"""

from __future__ import annotations

import json

from ...core import BadRequest, RoomkeeperError

__all__ = ["UnsupportedMediaType", "decode_json", "require_json_media_type"]


class UnsupportedMediaType(RoomkeeperError):
    code = "unsupported_media_type"
    status = 415


def require_json_media_type(mimetype: str) -> None:
    """``mimetype`` is the Content-Type without parameters, '' when absent."""
    if mimetype not in ("", "application/json"):
        raise UnsupportedMediaType(f"expected application/json, got {mimetype}")


def _invalid(reason: str) -> BadRequest:
    return BadRequest(f"the body is not valid JSON: {reason}", code="invalid_json")


def _reject_constant(name: str) -> object:
    raise _invalid(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _invalid("duplicate object key")
    return result


def _check_text(value: object) -> None:
    """Lone surrogates ("\\ud800") decode fine but can never be stored or sent as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _invalid("a string holds a lone surrogate") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def decode_json(body: bytes) -> object:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("not UTF-8") from None
    try:
        value = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise _invalid(exc.msg) from None
    except ValueError:
        # int() refuses a literal of more than 4300 digits (CPython's conversion limit).
        raise _invalid("a number is too long") from None
    except RecursionError:
        raise _invalid("nested too deeply") from None
    _check_text(value)
    return value
