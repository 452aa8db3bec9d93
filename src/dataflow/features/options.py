"""``__dataflow__`` options -> the features of one model, checked at model definition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dataflow.errors import ModelDefinitionError
from dataflow.features.audit import Audit
from dataflow.features.base import Feature
from dataflow.features.soft_delete import SoftDelete
from dataflow.features.tenancy import Tenancy
from dataflow.features.timestamps import Timestamps
from dataflow.features.versioning import Versioning
from dataflow.models.parse import check_class, parse_model
from dataflow.models.spec import ModelSpec

#: Every ``__dataflow__`` key; ``encryption`` is known but refused until it works.
KNOWN_OPTIONS = frozenset({"multi_tenant", "soft_delete", "versioned", "audit_log", "encryption"})
IMPLEMENTED_OPTIONS = frozenset({"multi_tenant", "soft_delete", "versioned", "audit_log"})


@dataclass(frozen=True, slots=True)
class Defaults:
    """What the DataFlow's own options say for models that leave an option out."""

    multi_tenant: bool = False
    audit_log: bool = False
    #: ``tenant_isolation="strict"``: an operation on a tenant model needs a tenant.
    strict_tenancy: bool = True


#: A DataFlow's options left as they are.
NO_DEFAULTS = Defaults()


def _flag(model: str, options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ModelDefinitionError(f"{model}.__dataflow__['{key}'] must be True or False")
    return value


def _versioned(model: str, options: Mapping[str, Any]) -> tuple[bool, bool]:
    """Whether the model is versioned, and whether its updates must name a version."""
    value = options.get("versioned", False)
    if isinstance(value, bool):
        return value, False
    if isinstance(value, Mapping) and set(value) <= {"require_version"}:
        require = value.get("require_version", False)
        if isinstance(require, bool):
            return True, require
    raise ModelDefinitionError(
        f"{model}.__dataflow__['versioned'] must be True, False or "
        "{'require_version': True | False}"
    )


def check_options(model: str, raw: Any) -> dict[str, Any]:
    """The ``__dataflow__`` dict: known keys only; options still to come are refused."""
    options = raw or {}
    if not isinstance(options, dict):
        raise ModelDefinitionError(f"{model}.__dataflow__ must be a dict")
    for key in options:
        if key not in KNOWN_OPTIONS:
            raise ModelDefinitionError(
                f"{model}.__dataflow__: unknown option '{key}'. Known options: "
                f"{', '.join(sorted(KNOWN_OPTIONS))}"
            )
        if key not in IMPLEMENTED_OPTIONS and options[key]:
            raise ModelDefinitionError(
                f"{model}.__dataflow__: option '{key}' is not available in this release; "
                "remove it rather than rely on it"
            )
    return dict(options)


def model_spec(cls: type, defaults: Defaults = NO_DEFAULTS) -> ModelSpec:
    """A model class read into a ModelSpec, with the features its ``__dataflow__`` turns on.

    ``defaults`` are the DataFlow's options for the ``__dataflow__`` keys a model leaves out.
    """
    check_class(cls)
    options = check_options(cls.__name__, getattr(cls, "__dataflow__", None))
    return parse_model(cls, options, model_features(cls.__name__, options, defaults))


def model_features(model: str, options: Mapping[str, Any], defaults: Defaults) -> list[Feature]:
    """The statement pipeline of a model: timestamps, then each option that is on."""
    features: list[Feature] = [Timestamps()]
    if _flag(model, options, "multi_tenant", defaults.multi_tenant):
        features.append(Tenancy(model, defaults.strict_tenancy))
    if _flag(model, options, "soft_delete", False):
        features.append(SoftDelete())
    versioned, require = _versioned(model, options)
    if versioned:
        features.append(Versioning(model, require))
    if _flag(model, options, "audit_log", defaults.audit_log):
        features.append(Audit(model))
    return features
