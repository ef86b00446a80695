"""A strict OCSF 1.8.0 event checker, compiled from the schema source (not from the renderer).

It resolves a class the way the OCSF compiler does: `extends` chains for classes and objects,
`$include`d profiles (their attributes only count when the profile is listed in
`metadata.profiles`; a re-declaration with `"profile": null` makes them plain attributes),
definitions merged over `dictionary.json`. It then fails on unknown or deprecated attributes,
wrong types (including the regex of ip_t, email_t, ...), enum values outside the enum, missing
required attributes, broken `at_least_one`/`just_one` constraints, captions that disagree with
their `*_id`, and wrong `category_uid`/`type_uid`/`metadata.version`.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from pathlib import Path
from typing import Any

from tests.render.schemas import OCSF_DIR, require

Attrs = dict[str, dict[str, Any]]
_CLASSIFIERS = frozenset({"class_uid", "category_uid", "type_uid"})


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class Schema:
    """The OCSF schema source, compiled lazily per class and object."""

    def __init__(self, root: Path) -> None:
        self.root = root
        dictionary = _load(root / "dictionary.json")
        self.dict_attrs: Attrs = dictionary["attributes"]
        self.types: Attrs = dictionary["types"]["attributes"]
        self.objects = {d["name"]: d for d in map(_load, (root / "objects").glob("*.json"))}
        self.events = {d["name"]: d for d in map(_load, (root / "events").rglob("*.json"))}
        self.categories = {
            name: (c["uid"], c["caption"])
            for name, c in _load(root / "categories.json")["attributes"].items()
        }
        self.profile_names = {p.stem for p in (root / "profiles").glob("*.json")}
        self.class_by_uid = {self.class_uid(n): n for n, d in self.events.items() if "uid" in d}
        self._regex = {
            name: re.compile(t["regex"]) for name, t in self.types.items() if "regex" in t
        }

    def _category(self, name: str) -> str:
        raw = self.events[name]
        return str(raw["category"]) if "category" in raw else self._category(raw["extends"])

    def class_uid(self, name: str) -> int:
        category = self._category(name)
        return int(self.categories[category][0]) * 1000 + int(self.events[name]["uid"])

    def category_of(self, class_uid: int) -> tuple[int, str]:
        return self.categories[self._category(self.class_by_uid[class_uid])]

    def _attributes(self, raw: dict[str, Any], parent: Attrs) -> Attrs:
        attrs = copy.deepcopy(parent)
        own = raw.get("attributes", {})
        includes = own.get("$include", [])
        for include in [includes] if isinstance(includes, str) else includes:
            profile = _load(self.root / include)
            for name, spec in profile["attributes"].items():
                attrs[name] = _deep_merge(attrs.get(name, {}), {**spec, "profile": profile["name"]})
        for name, spec in own.items():
            if name != "$include":
                attrs[name] = _deep_merge(attrs.get(name, {}), spec)
        return attrs

    @functools.cache  # noqa: B019 - one Schema per process
    def event_class(self, name: str) -> tuple[Attrs, dict[str, Any]]:
        raw = self.events[name]
        parent, constraints = self.event_class(raw["extends"]) if "extends" in raw else ({}, {})
        return self._attributes(raw, parent), raw.get("constraints", constraints)

    @functools.cache  # noqa: B019 - one Schema per process
    def object(self, name: str) -> tuple[Attrs, dict[str, Any]]:
        raw = self.objects[name]
        parent, constraints = self.object(raw["extends"]) if "extends" in raw else ({}, {})
        return self._attributes(raw, parent), raw.get("constraints", constraints)

    def definition(self, name: str, local: dict[str, Any]) -> dict[str, Any]:
        return _deep_merge(self.dict_attrs.get(name, {}), local)

    def primitive_ok(self, type_name: str, value: Any) -> bool:
        spec = self.types[type_name]
        base = spec.get("type", type_name)
        if base in ("integer_t", "long_t"):
            ok = isinstance(value, int) and not isinstance(value, bool)
            low, high = spec.get("range", (-math.inf, math.inf))
            return ok and low <= value <= high
        if base == "float_t":
            number = isinstance(value, int | float) and not isinstance(value, bool)
            return number and math.isfinite(value)
        if base == "boolean_t":
            return isinstance(value, bool)
        if base == "json_t":
            return True
        if not isinstance(value, str):
            return False
        if len(value) > spec.get("max_len", math.inf):
            return False
        pattern = self._regex.get(type_name)
        return pattern is None or pattern.search(value) is not None


@functools.cache
def schema() -> Schema:
    return Schema(require(OCSF_DIR))


class _Checker:
    def __init__(self, sch: Schema, profiles: set[str]) -> None:
        self.schema = sch
        self.profiles = profiles
        self.errors: list[str] = []

    def fail(self, path: str, problem: str) -> None:
        self.errors.append(f"{path or '(event)'}: {problem}")

    def check_object(
        self, path: str, value: Any, attrs: Attrs, constraints: dict[str, Any]
    ) -> None:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {type(value).__name__}")
            return
        defs = {name: self.schema.definition(name, local) for name, local in attrs.items()}
        for key, item in value.items():
            spec = defs.get(key)
            if spec is None:
                self.fail(f"{path}.{key}".lstrip("."), "unknown attribute")
            else:
                self.check_attribute(f"{path}.{key}".lstrip("."), key, item, spec)
        for key, spec in defs.items():
            active = spec.get("profile") is None or spec["profile"] in self.profiles
            if spec.get("requirement") == "required" and active and key not in value:
                self.fail(f"{path}.{key}".lstrip("."), "required attribute missing")
        self.check_constraints(path, value, constraints)
        self.check_siblings(path, value, defs)

    def check_constraints(self, path: str, value: dict[str, Any], rules: dict[str, Any]) -> None:
        if (names := rules.get("at_least_one")) and not any(n in value for n in names):
            self.fail(path, f"needs at least one of {names}")
        if (names := rules.get("just_one")) and sum(n in value for n in names) != 1:
            self.fail(path, f"needs exactly one of {names}")

    def check_siblings(self, path: str, value: dict[str, Any], defs: Attrs) -> None:
        for key, spec in defs.items():
            sibling, enum = spec.get("sibling"), spec.get("enum")
            if key in _CLASSIFIERS or not (sibling and enum) or key not in value:
                continue
            caption = enum.get(str(value[key]), {}).get("caption")
            if sibling in value and value[key] != 99 and value[sibling] != caption:
                self.fail(f"{path}.{sibling}".lstrip("."), f"{value[sibling]!r} != {caption!r}")

    def check_attribute(self, path: str, key: str, value: Any, spec: dict[str, Any]) -> None:
        if spec.get("profile") is not None and spec["profile"] not in self.profiles:
            self.fail(path, f"belongs to profile {spec['profile']!r}, not in metadata.profiles")
        if "@deprecated" in spec:
            self.fail(path, "deprecated attribute")
        if spec.get("is_array"):
            if not isinstance(value, list):
                self.fail(path, "expected an array")
                return
            for i, item in enumerate(value):
                self.check_value(f"{path}[{i}]", key, item, spec)
        else:
            self.check_value(path, key, value, spec)

    def check_value(self, path: str, key: str, value: Any, spec: dict[str, Any]) -> None:
        type_name = spec.get("type")
        if type_name is None:
            self.fail(path, "attribute has no type in the schema")
        elif type_name == "object":
            if not isinstance(value, dict):
                self.fail(path, "expected a JSON object")
        elif type_name in self.schema.types:
            if not self.schema.primitive_ok(type_name, value):
                self.fail(path, f"{value!r:.80} is not a valid {type_name}")
            enum = spec.get("enum")
            if enum and key not in _CLASSIFIERS and str(value) not in enum:
                self.fail(path, f"{value!r} not in enum {sorted(enum)}")
        else:
            attrs, constraints = self.schema.object(type_name)
            self.check_object(path, value, attrs, constraints)


def validate(doc: dict[str, Any]) -> list[str]:
    """Every problem with an OCSF 1.8.0 event (empty list: valid)."""
    sch = schema()
    class_uid = doc.get("class_uid")
    if class_uid not in sch.class_by_uid:
        return [f"class_uid {class_uid!r} is not an OCSF 1.8.0 class"]
    name = sch.class_by_uid[class_uid]
    profiles = doc.get("metadata", {}).get("profiles", [])
    checker = _Checker(sch, set(profiles) if isinstance(profiles, list) else set())
    for profile in checker.profiles - sch.profile_names:
        checker.fail("metadata.profiles", f"unknown profile {profile!r}")
    attrs, constraints = sch.event_class(name)
    checker.check_object("", doc, attrs, constraints)
    _check_classification(sch, name, doc, attrs, checker)
    if doc.get("metadata", {}).get("version") != "1.8.0":
        checker.fail("metadata.version", "must be 1.8.0")
    return checker.errors


def _check_classification(
    sch: Schema, name: str, doc: dict[str, Any], attrs: Attrs, checker: _Checker
) -> None:
    class_uid, activity_id = doc["class_uid"], doc.get("activity_id")
    category_uid, category_caption = sch.category_of(class_uid)
    if doc.get("category_uid") != category_uid:
        checker.fail("category_uid", f"{doc.get('category_uid')!r} != {category_uid}")
    if isinstance(activity_id, int) and doc.get("type_uid") != class_uid * 100 + activity_id:
        checker.fail("type_uid", "must be class_uid * 100 + activity_id")
    caption = sch.events[name]["caption"]
    activities = sch.definition("activity_id", attrs["activity_id"])["enum"]
    activity = activities.get(str(activity_id), {}).get("caption")
    expected = {
        "class_name": caption,
        "category_name": category_caption,
        "type_name": f"{caption}: {activity}",
    }
    for key, want in expected.items():
        if key in doc and doc[key] != want:
            checker.fail(key, f"{doc[key]!r} != {want!r}")
