"""The one converter: records and node values to and from JSON-safe data.

Everything plait stores, sends to hooks or returns goes through :func:`make_converter`
(built on ``cattrs.preconf.json``). Never use ``cattrs.global_converter`` for plait data.
pydantic models are values too, when pydantic is installed (it is not a dependency).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path, PurePath
from typing import Any, Final

import cattrs
from cattrs.preconf.json import JsonConverter
from cattrs.preconf.json import make_converter as _make_json_converter

from plait.errors import ConversionError

__all__ = [
    "JSON_SCALARS",
    "dumps",
    "get_converter",
    "is_json_safe",
    "json_equal",
    "loads",
    "make_converter",
    "structure",
    "to_json_safe",
]

JSON_SCALARS: Final = (str, int, float, bool, type(None))
#: annotations that say nothing about a value's type: its data comes back as is
_MISSING_TYPES: Final = (None, Any, object)


def make_converter() -> JsonConverter:
    """Build plait's converter. Called once per process by :func:`get_converter`."""
    conv = _make_json_converter()
    conv.register_unstructure_hook(PurePath, str)
    # `object` (like Any) says nothing: its data as is, nested too (list[object], ...)
    conv.register_structure_hook_func(lambda tp: tp is object, lambda v, _: v)
    conv.register_structure_hook(Path, lambda v, _: Path(v))
    conv.register_structure_hook(PurePath, lambda v, _: PurePath(v))
    conv.register_unstructure_hook(timedelta, lambda td: td.total_seconds())
    conv.register_structure_hook(timedelta, lambda v, _: timedelta(seconds=v))
    conv.register_unstructure_hook(time, lambda t: t.isoformat())
    conv.register_structure_hook(time, lambda v, _: time.fromisoformat(v))
    # preconf json already maps datetime/date to ISO strings; make date strict so a
    # datetime string never silently becomes a date.
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    conv.register_structure_hook(date, lambda v, _: date.fromisoformat(v))
    _register_pydantic(conv)
    return conv


def _is_pydantic_model(tp: Any) -> bool:
    """Whether ``tp`` is a pydantic ``BaseModel`` class. pydantic is never imported here:
    when nobody imported it, no value can be one of its models."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _register_pydantic(conv: JsonConverter) -> None:
    """pydantic models as values (inputs, outputs, cached values): unstructured with
    ``model_dump(mode="json")``, structured with ``model_validate``, so they come back with
    their type. pydantic stays optional: these hooks only ever match its models."""
    conv.register_unstructure_hook_func(_is_pydantic_model, lambda m: m.model_dump(mode="json"))
    conv.register_structure_hook_func(_is_pydantic_model, lambda data, tp: tp.model_validate(data))


class _Holder:
    converter: JsonConverter | None = None


def get_converter() -> JsonConverter:
    """The process-wide converter, built on first use."""
    conv = _Holder.converter
    if conv is None:
        conv = _Holder.converter = make_converter()
    return conv


def _check_json_safe(data: Any, where: str) -> None:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, JSON_SCALARS):
            if isinstance(item, float) and item != item:  # NaN is not JSON
                raise ConversionError(f"{where}: NaN cannot be stored as JSON")
            continue
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                if not isinstance(key, str):
                    raise ConversionError(
                        f"{where}: dict key {key!r} ({type(key).__name__}) is not a string"
                    )
                stack.append(value)
        else:
            raise ConversionError(
                f"{where}: value of type {type(item).__qualname__} cannot be converted to "
                "JSON (register a cattrs hook, or use attrs classes, dataclasses, "
                "datetimes, paths and containers of those)"
            )


def is_json_safe(data: Any) -> bool:
    """Whether ``data`` already is JSON-safe (scalars, lists, tuples, str-keyed dicts)."""
    try:
        _check_json_safe(data, "value")
    except ConversionError:
        return False
    return True


def to_json_safe(value: Any, as_type: Any = None, *, where: str = "value") -> Any:
    """Unstructure ``value`` (as ``as_type`` when given) into JSON-safe data.

    Raises :class:`ConversionError` naming ``where`` when that is impossible.
    """
    if type(value) in JSON_SCALARS and not (type(value) is float and value != value):
        return value
    conv = get_converter()
    try:
        if as_type in _MISSING_TYPES:
            data = conv.unstructure(value)
        else:
            data = conv.unstructure(value, unstructure_as=as_type)
    except Exception as exc:
        raise ConversionError(
            f"{where}: cannot unstructure {type(value).__qualname__}: {exc}"
        ) from exc
    _check_json_safe(data, where)
    return data


def structure(data: Any, as_type: Any, *, where: str = "value") -> Any:
    """Structure JSON-safe ``data`` into ``as_type``; errors name ``where`` and the path."""
    if as_type in _MISSING_TYPES:
        return data
    try:
        return get_converter().structure(data, as_type)
    except Exception as exc:
        details = (
            cattrs.transform_error(exc, path="$")
            if isinstance(exc, cattrs.BaseValidationError | cattrs.ForbiddenExtraKeysError)
            else [str(exc)]
        )
        raise ConversionError(
            f"{where}: cannot restore a value of type {_type_name(as_type)}", details
        ) from exc


_INF: Final = float("inf")
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), sort_keys=True, allow_nan=False)
_encode_str: Final = json.encoder.encode_basestring_ascii


def _unencodable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# ``JSONEncoder.encode`` builds a new C encoder on every call (half its cost for a small
# value); this one is built once, with the same options. Given JSON-safe data (no cycles),
# the text is the same.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_chunks: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, _unencodable, _encode_str, None, ":", ",", True, False, False)
)


def dumps(data: Any) -> str:
    """JSON text of JSON-safe data, compact and deterministic.

    Infinities are written as the numbers ``1e999`` and ``-1e999``: valid JSON, which
    :func:`loads` (and any reader with IEEE doubles) reads back as ``inf`` and ``-inf``.
    NaN has no such spelling: it raises ``ValueError``.
    """
    kind = type(data)
    if kind is str:
        return _encode_str(data)
    if kind is int:
        return int.__repr__(data)
    try:
        if _chunks is None:
            return _ENCODER.encode(data)
        return "".join(_chunks(data, 0))
    except ValueError:  # a float that is not finite: the slow spelling below
        return "".join(_encode_nonfinite(data))


def _encode_nonfinite(data: Any) -> Iterator[str]:
    """``dumps`` for data holding an infinity (the same text for everything else)."""
    kind = type(data)
    if kind is float or isinstance(data, float):
        if data != data:
            raise ValueError("NaN cannot be stored as JSON")
        if data in (_INF, -_INF):
            yield "1e999" if data > 0 else "-1e999"
        else:
            yield float.__repr__(data)
    elif isinstance(data, dict):
        yield "{"
        for i, key in enumerate(sorted(data)):
            yield f"{',' if i else ''}{_encode_str(key)}:"
            yield from _encode_nonfinite(data[key])
        yield "}"
    elif isinstance(data, list | tuple):
        yield "["
        for i, item in enumerate(data):
            if i:
                yield ","
            yield from _encode_nonfinite(item)
        yield "]"
    else:
        yield _ENCODER.encode(data)


def loads(text: str) -> Any:
    return json.loads(text)


def json_equal(a: Any, b: Any) -> bool:
    """Whether JSON-safe ``a`` and ``b`` are the same JSON (a tuple is a list, ``1`` is
    ``1.0``)."""
    return bool(a == b) or loads(dumps(a)) == loads(dumps(b))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)
