"""The models of one DataFlow instance, by name, and the relations between them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dataflow.errors import ModelDefinitionError
from dataflow.models.relations import Relation, resolve_relations
from dataflow.models.spec import ModelSpec


class ModelCatalog(Mapping[str, ModelSpec]):
    """Model specs by name; a name or a table is defined once."""

    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}

    def add(self, spec: ModelSpec) -> None:
        """Add ``spec``; a second model of the same name or table is refused."""
        if spec.name in self._specs:
            raise ModelDefinitionError(
                f"{spec.name} is already a model of this DataFlow; a model is defined once per "
                "instance (rename the class, or use another DataFlow for another database)"
            )
        for other in self._specs.values():
            if other.table_name == spec.table_name:
                raise ModelDefinitionError(
                    f"{spec.name}: table '{spec.table_name}' already belongs to model "
                    f"{other.name}; set __tablename__ to another name"
                )
        self._specs[spec.name] = spec

    def get_model(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(self._specs) or "(none yet)"
            raise ModelDefinitionError(
                f"no model '{name}' on this DataFlow; models: {known}"
            ) from None

    def relations(self, model: str) -> dict[str, Relation]:
        """The relations of ``model`` whose target models are defined, by name."""
        return resolve_relations(self.get_model(model), self._specs)

    def links(self, spec: ModelSpec) -> list[tuple[ModelSpec, Relation]]:
        """Every relation among the models once ``spec`` joins them, with its owner."""
        models = {**self._specs, spec.name: spec}
        return [(m, r) for m in models.values() for r in resolve_relations(m, models).values()]

    def __getitem__(self, name: str) -> ModelSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)
