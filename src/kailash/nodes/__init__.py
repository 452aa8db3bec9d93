"""Node base class, parameter declarations and the node registry."""

from kailash.nodes.base import MISSING, Node, NodeParameter
from kailash.nodes.registry import NodeRegistry, default_registry, register_node

__all__ = ["MISSING", "Node", "NodeParameter", "NodeRegistry", "default_registry", "register_node"]
