"""Run history in a JSON-lines file: the example plugin of plait's plugin guide."""

from __future__ import annotations

from plait_jsonl_provenance.backend import JsonlProvenance

__all__ = ["JsonlProvenance"]
