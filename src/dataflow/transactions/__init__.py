"""Transactions: ACID scopes, sagas with compensation, and two-phase commit, with recovery."""

from dataflow.database.scope import TransactionScope
from dataflow.database.transaction import Transaction
from dataflow.transactions.nodes import TransactionManagerNode, TransactionScopeNode
from dataflow.transactions.saga import SagaRecovery
from dataflow.transactions.twophase import TwoPhaseRecovery

__all__ = [
    "SagaRecovery",
    "Transaction",
    "TransactionManagerNode",
    "TransactionScope",
    "TransactionScopeNode",
    "TwoPhaseRecovery",
]
