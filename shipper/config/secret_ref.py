"""`SecretRef`: where a secret lives (an environment variable or a file), never the secret itself.

A settings field typed `SecretRef` (or `SecretRef | None`) accepts the nested form
`token = { env = "HEC_TOKEN" }` and the flat keys every existing config uses, `token_env` and
`token_file`; `SecretFields` folds the flat keys in and names them as written in every error.
When both `env` and `file` are given, the file wins (container secrets over the environment).
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails

from shipper.secrets import SecretUnavailableError, remember

PARTS = ("env", "file")


class SecretRef(BaseModel):
    """`{ env = "VAR" }` or `{ file = "/path" }`; the file wins when both are set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = Field(
        default=None, min_length=1, description="Environment variable holding the secret."
    )
    file: Path | None = Field(default=None, description="File holding the secret; wins over env.")
    # The field's name and whether it was written flat (`token_env`) or nested (`token.env`).
    _field: str = PrivateAttr(default="secret")
    _flat: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _somewhere(self) -> SecretRef:
        if self.env is None and self.file is None:
            raise ValueError('give env = "VARIABLE" or file = "/path"')
        return self

    def key(self, part: str) -> str:
        """The key of `part` ("env" or "file") as the config file spells it."""
        return f"{self._field}_{part}" if self._flat else f"{self._field}.{part}"

    def read(self, section: str, path: Path | None = None) -> SecretStr:
        """The secret; `SecretUnavailableError` (a config error) naming `section` and the key.

        `section` says where the field sits, e.g. `[[sinks]] "hec"`. The message never holds
        the secret, only the variable's name or the file's path.
        """
        part = "file" if self.file is not None else "env"
        value = self._value()
        if isinstance(value, SecretStr):
            return value
        where = str(path) if path is not None else None
        raise SecretUnavailableError(value, path=where, key=f"{section}: {self.key(part)}")

    def _value(self) -> SecretStr | str:
        """The secret, or what is wrong (a message without the secret)."""
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                return f"cannot read {self.file}: {exc.strerror}"
            if not text:
                return f"the file {self.file} is empty"
        else:
            text = os.environ.get(self.env or "", "").strip()
            if not text:
                return f"the variable {self.env} is not set or is empty"
        remember(text)
        return SecretStr(text)


def sink_section(name: str) -> str:
    return f'[[sinks]] "{name}"'


def source_section(name: str) -> str:
    return f'[source] "{name}"'


def secret_fields(model: type[BaseModel]) -> list[str]:
    """Names of the fields of `model` typed `SecretRef` or `SecretRef | None`."""
    names = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        is_union = get_origin(annotation) in (Union, types.UnionType)
        if annotation is SecretRef or (is_union and SecretRef in get_args(annotation)):
            names.append(name)
    return names


def secret_refs(settings: BaseModel) -> list[SecretRef]:
    """Every `SecretRef` set in `settings`, with those of its nested `SecretFields` tables
    (a sink's `privacy.hash_key`)."""
    refs = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretRef):
            refs.append(value)
        elif isinstance(value, SecretFields):
            refs += secret_refs(value)
    return refs


class SecretFields(BaseModel):
    """Base of settings with `SecretRef` fields: folds the flat `X_env`/`X_file` keys into `X`."""

    @model_validator(mode="wrap")
    @classmethod
    def _fold_flat_secret_keys(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        names = secret_fields(cls)
        flat: set[str] = set()
        if isinstance(data, dict) and names:
            data = dict(data)
            for name in names:
                given = {p: data.pop(f"{name}_{p}") for p in PARTS if f"{name}_{p}" in data}
                given = {p: v for p, v in given.items() if v is not None}
                if given and name in data:
                    raise ValueError(f"give {name} or {name}_env/{name}_file, not both")
                if given:
                    data[name] = given
                    flat.add(name)
        try:
            model = handler(data)
        except ValidationError as exc:
            raise _as_written(exc, cls, flat) from None
        for name in names:
            ref = getattr(model, name, None)
            if isinstance(ref, SecretRef):
                ref._field, ref._flat = name, name in flat
        return model


def _as_written(exc: ValidationError, model: type[BaseModel], flat: set[str]) -> ValidationError:
    """`exc` with the locations of folded keys spelled as the user wrote them (`token_env`)."""
    names = secret_fields(model)
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        detail: InitErrorDetails = {
            "type": error["type"],
            "loc": loc,
            "input": error["input"],
            "ctx": error.get("ctx", {}),
        }
        if loc and loc[0] in flat and len(loc) > 1 and loc[1] in PARTS:
            detail["loc"] = (f"{loc[0]}_{loc[1]}", *loc[2:])
        elif len(loc) == 1 and loc[0] in names and error["type"] == "missing":
            name = loc[0]
            detail = {
                "type": "value_error",
                "loc": loc,
                "input": error["input"],
                "ctx": {"error": ValueError(f"set {name}_env or {name}_file")},
            }
        details.append(detail)
    return ValidationError.from_exception_data(exc.title, details)
