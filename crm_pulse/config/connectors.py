"""The ``connectors`` section: one entry per connector, keyed by its kind.

Every kind -- built in or added by a plugin -- is a class in the ``crm_pulse.connectors``
entry-point group (:mod:`crm_pulse.connectors.registry`) that declares its settings model in
``settings_model``, a subclass of :class:`ConnectorSettings`. An entry ``- hubspot: {...}`` is
validated by that model, so every connector gets the same checks: unknown keys with
suggestions, ``${ENV}``-only secrets (:data:`~crm_pulse.config.secrets.Secret`), durations like
``30s`` (:data:`~crm_pulse.config.durations.Duration`), and each problem with its file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from types import ModuleType
from typing import Annotated, Any, ClassVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from ..errors import ConfigError
from .base import ConfigModel, ConnectorName, ExistingFile, did_you_mean
from .durations import Duration

__all__ = ["ConnectorEntry", "ConnectorSettings", "VendorSettings", "settings_model"]


class ConnectorSettings(ConfigModel):
    """Settings every connector kind has; a connector's settings model subclasses it."""

    KIND: ClassVar[str] = ""

    name: ConnectorName = Field(
        default="",
        description="Unique name of this connector: the ``source`` of its events and what "
        "write-back targets refer to. Default: the kind (hubspot, salesforce, ...).",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data:
            return {**data, "name": cls.KIND}
        return data


class VendorSettings(ConnectorSettings):
    """Settings shared by the CRM connectors that poll over HTTP."""

    poll_interval: Annotated[Duration, Field(gt=0)] = Field(
        default=60.0, description="How often to poll for changes (the safety net under webhooks)."
    )
    backfill_since: date | None = Field(
        default=None, description="Oldest modification date a backfill pulls; default: all."
    )
    timeout: Annotated[Duration, Field(gt=0)] = Field(
        default=30.0, description="Timeout of one HTTP request."
    )
    ca_cert: ExistingFile | None = Field(
        default=None,
        description="PEM file of a CA to trust instead of the system's (tests, local fakes).",
    )


def settings_model(kind: str) -> type[ConnectorSettings]:
    """The settings model the connector class registered for ``kind`` declares."""
    model: type[ConnectorSettings] = _registry().connector_class(kind).settings_model
    return model


def _registry() -> ModuleType:
    # Imported when used: the connectors import this module for their settings bases.
    from ..connectors import registry

    return registry


_ERROR_TYPES = frozenset(get_args(ErrorType))


def _under(kind: str, exc: ValidationError) -> ValidationError:
    """``exc`` with every location moved under the kind's key, as if the settings were a field
    of the entry (so the loader finds the file's line and the allowed keys)."""
    details: list[InitErrorDetails] = []
    for err in exc.errors():
        kind_of: str | PydanticCustomError = err["type"]
        if kind_of not in _ERROR_TYPES:
            kind_of = PydanticCustomError(err["type"], err["msg"])
        detail: InitErrorDetails = {
            "type": kind_of,
            "loc": (kind, *err["loc"]),
            "input": err["input"],
        }
        if "ctx" in err and not isinstance(kind_of, PydanticCustomError):
            detail["ctx"] = err["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(exc.title, details, hide_input=True)


class ConnectorEntry(BaseModel):
    """One item of ``connectors``: a mapping with one key, the connector kind, whose value is
    validated by the settings model of the kind's connector class."""

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)
    __pydantic_extra__: dict[str, ConnectorSettings] = Field(init=False)

    @model_validator(mode="wrap")
    @classmethod
    def _one_kind(
        cls, data: Any, handler: ModelWrapValidatorHandler[ConnectorEntry], info: ValidationInfo
    ) -> ConnectorEntry:
        if isinstance(data, ConnectorEntry):
            return data
        if isinstance(data, str):
            data = {data: None}
        if not isinstance(data, dict) or not data:
            raise ValueError(
                "expected a mapping with one key, the connector kind: - hubspot: {...}"
            )
        registry = _registry()
        known = registry.connector_kinds()
        if len(data) > 1:
            keys = [str(k) for k in data]
            kinds = [k for k in keys if k in known]
            if len(kinds) == 1:
                others = ", ".join(k for k in keys if k != kinds[0])
                raise ValueError(
                    f"a connector entry has one key, its kind ({kinds[0]}): indent {others} "
                    f"under {kinds[0]}"
                )
            raise ValueError(f"a connector entry has one key, its kind; found {', '.join(keys)}")
        ((kind, settings),) = data.items()
        kind = str(kind)
        if kind not in known:
            raise ValueError(
                f"unknown connector kind {kind!r}{did_you_mean(kind, known)}; known kinds: "
                f"{', '.join(known)} (plugins add kinds through the {registry.PLUGIN_GROUP!r} entry points)"
            )
        try:
            model = settings_model(kind)
        except ConfigError as exc:  # a broken plugin: a problem of this entry, not a crash
            raise ValueError("; ".join(p.message for p in exc.problems)) from None
        if not isinstance(settings, model):
            try:
                settings = model.model_validate(
                    {} if settings is None else settings, context=info.context
                )
            except ValidationError as exc:
                raise _under(kind, exc) from None
        return handler({kind: settings})

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield self.kind, self.settings

    @model_serializer(mode="wrap")
    def _only_kind(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k == self.kind}
        return data

    @property
    def kind(self) -> str:
        """The connector kind: hubspot, salesforce, pipedrive, events, file or a plugin's."""
        return next(iter(self.__pydantic_extra__ or {}), "")

    @property
    def settings(self) -> ConnectorSettings:
        """The kind's settings, validated by its connector's settings model."""
        return (self.__pydantic_extra__ or {})[self.kind]

    @property
    def name(self) -> str:
        """The connector's name (default: its kind)."""
        return self.settings.name or self.kind

    @property
    def can_write(self) -> bool:
        """False for a connector that only receives (the events ingress)."""
        can_write: bool = _registry().connector_class(self.kind).can_write
        return can_write
