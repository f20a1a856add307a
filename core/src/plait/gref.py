"""Global references: ``"package.module:attribute.path"`` names an importable object.

A gref is how configuration files and :meth:`plait.Namespace.to_dict` name callables and
DAG factories. :func:`resolve` imports one; :func:`gref_of` finds the gref of an object,
when importing that gref gives the object back.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Final

from plait.errors import GrefError

__all__ = ["gref_of", "import_module", "resolve", "resolve_callable", "split_gref"]

_MODULE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def split_gref(gref: str) -> tuple[str, str]:
    """``"pkg.mod:obj.attr"`` -> ``("pkg.mod", "obj.attr")``; :class:`GrefError` if malformed."""
    if not isinstance(gref, str):
        raise GrefError(f"a gref is a string like 'package.module:callable', not {gref!r}")
    module_name, colon, attr_path = gref.partition(":")
    if not colon or not _MODULE.match(module_name) or not _MODULE.match(attr_path):
        raise GrefError(f"gref {gref!r} must look like 'package.module:callable'")
    return module_name, attr_path


def import_module(module_name: str, *, gref: str | None = None) -> Any:
    """Import ``module_name``; :class:`GrefError` naming it (and ``gref``) when that fails."""
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raised while importing
        what = f"gref {gref!r}" if gref else f"module {module_name!r}"
        raise GrefError(
            f"{what}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc


def resolve(gref: str) -> Any:
    """The object ``gref`` names (imports its module)."""
    module_name, attr_path = split_gref(gref)
    target = import_module(module_name, gref=gref)
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise GrefError(f"gref {gref!r}: {part!r} not found") from exc
    return target


def resolve_callable(gref: str) -> Any:
    """The callable ``gref`` names; :class:`GrefError` when it names something else."""
    target = resolve(gref)
    if not callable(target):
        raise GrefError(f"gref {gref!r} names {type(target).__name__} object, not a callable")
    return target


def gref_of(obj: Any) -> str | None:
    """``"module:qualname"`` of ``obj`` when resolving it gives ``obj`` back, else ``None``
    (lambdas, nested functions, objects created at run time)."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    gref = f"{module}:{qualname}"
    try:
        found = resolve(gref)
    except GrefError:
        return None
    return gref if found is obj else None
