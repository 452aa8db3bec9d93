"""DataFlow node classes: the generated CRUD and bulk nodes and the base for custom ones."""

from dataflow.nodes.base import DataFlowNode

BaseDataFlowNode = DataFlowNode

__all__ = ["BaseDataFlowNode", "DataFlowNode"]
