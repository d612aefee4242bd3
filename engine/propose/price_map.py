"""Which models litellm's price map cannot price, found by reading the map's file rather than importing litellm.

Why: a model called directly (engine/propose/openai_http.py) with no prices of its own is priced by litellm, whose
import takes ~4 s of CPU; for a model litellm cannot price anyway (a local server's own name) that import would
only delay the first candidate to learn that the answer is free. The check is conservative: a model counts as
unpriceable only when no key of the installed map (the file litellm reads with LITELLM_LOCAL_MODEL_COST_MAP) is
its name, its name without the provider, or a part of either (case-insensitive), and no fallback rule's pattern
matches either; anything else is priced by litellm itself. With litellm already imported (its map may have been
changed at run time), this says nothing and litellm decides.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Collection
from pathlib import Path

MAP_FILE = "model_prices_and_context_window_backup.json"


def unpriceable(names: Collection[str]) -> set[str]:
    """The names among `names` that litellm's price map surely cannot price (empty when unsure of any)."""
    if not names or "litellm" in sys.modules:
        return set()
    entries = _read_map()
    if entries is None:
        return set()
    keys = [key.lower() for key in entries if key != "fallback_generalizations"]
    rules = entries.get("fallback_generalizations", {})
    patterns = [rule.get("pattern") for rule in rules.get("rules", [])] if isinstance(rules, dict) else None
    if patterns is None or not all(isinstance(p, str) for p in patterns):
        return set()  # a map this check does not understand: litellm decides
    try:
        compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    except re.error:
        return set()
    found = set()
    for name in names:
        forms = {name.lower(), name.split("/", 1)[-1].lower()}
        if any(key in form for key in keys for form in forms):
            continue
        if any(rule.search(form) for rule in compiled for form in forms):
            continue
        found.add(name)
    return found


def _read_map() -> dict | None:
    try:
        spec = importlib.util.find_spec("litellm")
        folders = list(spec.submodule_search_locations or []) if spec else []
        for folder in folders:
            path = Path(folder) / MAP_FILE
            if path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
                return data if isinstance(data, dict) else None
    except (OSError, ValueError, ImportError):
        return None
    return None
