"""Bulk writes: many rows per statement, streamed in batches, with true counts."""

from dataflow.bulk.run import BulkRun, Outcome, Plan

__all__ = ["BulkRun", "Outcome", "Plan"]
