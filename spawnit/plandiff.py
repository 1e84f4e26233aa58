"""A plan a person can read, from the engine's JSON plan (``tofu show -json PLANFILE``).

The JSON plan format (OpenTofu's and Terraform's "JSON Output Format" documentation) gives, per resource in
``resource_changes``: ``change.actions`` (``["create"]``, ``["update"]``, ``["delete"]``, ``["no-op"]``,
``["read"]``, and for a replacement ``["delete", "create"]`` or ``["create", "delete"]``), ``before`` and
``after`` (the attribute values), ``after_unknown`` (the same shape, ``true`` where a value is known only
after apply), ``before_sensitive`` / ``after_sensitive`` (``true`` where a value is sensitive) and
``replace_paths`` (the attribute paths that force a replacement). ``resource_drift`` has the same shape for
what the refresh found changed outside the engine. This module turns that into:

- one entry per changed resource, deletes and replaces first: its action, for a replacement the attributes
  that force it, and for an update or a replacement each changed attribute with its value before and after;
- sensitive values masked (``(sensitive)``), unknown ones shown as ``(known after apply)``;
- a summary line like the engine's: ``Plan: 1 to add, 2 to change, 1 to destroy.``

No value marked sensitive ever leaves this module; the plan JSON itself holds them in clear.
"""

from __future__ import annotations

from typing import Any

SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
# The order a reviewer reads them in: what is lost first.
ORDER = ("delete", "replace", "update", "create", "read")


def action_of(actions: list[str]) -> str | None:
    """One word for a change's actions: create, update, replace, delete, read; None for no-op."""
    if sorted(actions) == ["create", "delete"]:
        return "replace"
    if actions in (["create"], ["update"], ["delete"], ["read"]):
        return actions[0]
    return None


def _flatten(value: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """Leaf values by path: {"tags": {"Name": "x"}} -> {("tags", "Name"): "x"}. An empty map or list is
    null: providers read back one for the other (``tags = null`` written, ``{}`` refreshed), no change."""
    if isinstance(value, dict) and value:
        return {key: leaf for name, item in value.items() for key, leaf in _flatten(item, path + (name,)).items()}
    if isinstance(value, list) and value:
        return {key: leaf for index, item in enumerate(value) for key, leaf in _flatten(item, path + (index,)).items()}
    return {path: None if value in ({}, []) else value}


def _marked(marks: Any, path: tuple[Any, ...]) -> bool:
    """Whether ``path`` (or a parent of it) is ``true`` in a sensitivity or unknown mark tree."""
    node = marks
    for step in path:
        if node is True:
            return True
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return False
    return node is True


def _marked_below(marks: Any, path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Paths under ``path`` marked ``true`` (an unknown attribute whose value is absent from ``after``)."""
    node = marks
    for step in path:
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return []
    if node is True:
        return [path]
    return [key for key in _flatten(node, path) if _marked(marks, key)] if isinstance(node, (dict, list)) else []


def path_name(path: tuple[Any, ...]) -> str:
    """("ingress", 0, "from_port") -> "ingress[0].from_port"."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _shown(value: Any, sensitive: bool, unknown: bool = False) -> Any:
    if sensitive:
        return SENSITIVE
    if unknown:
        return UNKNOWN
    return value


def attribute_changes(change: dict[str, Any]) -> list[dict[str, Any]]:
    """Each attribute whose value differs between ``before`` and ``after``, masked where sensitive."""
    before, after = change.get("before") or {}, change.get("after") or {}
    before_marks, after_marks, unknown = change.get("before_sensitive"), change.get("after_sensitive"), change.get("after_unknown")
    old, new = _flatten(before), _flatten(after)
    paths = set(old) | set(new) | set(_marked_below(unknown, ()))
    changes = []
    for path in sorted(paths, key=lambda item: [str(step) for step in item]):
        if not path:
            continue
        is_unknown = _marked(unknown, path)
        if not is_unknown and old.get(path) == new.get(path):
            continue
        sensitive = _marked(before_marks, path) or _marked(after_marks, path)
        changes.append({
            "attribute": path_name(path),
            "before": _shown(old.get(path), sensitive and old.get(path) is not None),
            "after": _shown(new.get(path), sensitive and (new.get(path) is not None or is_unknown), is_unknown),
        })
    return changes


def _entry(item: dict[str, Any], action: str, *, attributes: bool = True) -> dict[str, Any]:
    change = item.get("change", {})
    entry: dict[str, Any] = {"address": item["address"], "type": item.get("type"), "action": action}
    if action == "replace":
        entry["forced_by"] = sorted({path_name(tuple(path)) for path in change.get("replace_paths", []) if path})
    if attributes and action in ("update", "replace", "create"):  # a creation: every value it sets, or will know
        entry["attributes"] = [item for item in attribute_changes(change) if action != "create" or item["after"] is not None]
    return entry


def summarize(counts: dict[str, int]) -> str:
    """The engine's summary line: a replacement counts once to add and once to destroy."""
    add = counts.get("create", 0) + counts.get("replace", 0)
    change = counts.get("update", 0)
    destroy = counts.get("delete", 0) + counts.get("replace", 0)
    if not (add or change or destroy):
        return "No changes. Your infrastructure matches the configuration."
    return f"Plan: {add} to add, {change} to change, {destroy} to destroy."


def readable(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan as a reviewer reads it: ``summary``, ``counts``, ``resources`` (deletes and replaces first),
    ``drift`` (what changed outside the engine, with its attributes) and ``outputs`` (names whose value changes)."""
    resources = []
    for item in plan.get("resource_changes", []):
        action = action_of(item.get("change", {}).get("actions", []))
        if action is not None:
            resources.append(_entry(item, action))
    resources.sort(key=lambda entry: (ORDER.index(entry["action"]), entry["address"]))
    counts = {action: sum(1 for entry in resources if entry["action"] == action) for action in ORDER}
    drift = []
    for item in plan.get("resource_drift", []):
        action = action_of(item.get("change", {}).get("actions", []))
        entry = _entry(item, action) if action is not None else None
        if entry is not None and (action == "delete" or entry.get("attributes")):  # null read back as {}: no drift
            drift.append({**entry, "action": "deleted outside" if action == "delete" else "changed outside"})
    outputs = sorted(
        name for name, change in plan.get("output_changes", {}).items() if action_of(change.get("actions", [])) is not None
    )
    return {
        "summary": summarize(counts),
        "counts": {action: count for action, count in counts.items() if count},
        "resources": resources,
        "drift": drift,
        "outputs": outputs,
    }


def drift_causes(diff: dict[str, Any]) -> list[tuple[str, str]]:
    """(resource type, attribute) pairs a plan's drift and changes name: the cause two instances share when
    they drift the same way. A resource gone or to be created is (type, "(whole resource)")."""
    causes = set()
    for entry in diff.get("drift", []) + diff.get("resources", []):
        attributes = entry.get("attributes") or []
        if not attributes:
            causes.add((entry.get("type") or entry["address"].split(".")[0], "(whole resource)"))
        for attribute in attributes:
            causes.add((entry.get("type") or entry["address"].split(".")[0], attribute["attribute"]))
    return sorted(causes)
