"""A bound on how deeply a request body nests arrays and objects.

The proxy forwards bodies to providers mostly unchanged, so it refuses pathological nesting
itself (the parser's own limit is 1,024 levels) rather than pass it on. Most bodies are decided
by counting bracket bytes in C; only bodies with more openers than the limit are walked.
"""

from __future__ import annotations

from typing import Any


def nests_deeper_than(raw: bytes, value: Any, limit: int) -> bool:
    """True when `value`, parsed from `raw`, has more than `limit` levels of arrays/objects."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # nesting needs an opener per level; brackets in strings only add
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False
