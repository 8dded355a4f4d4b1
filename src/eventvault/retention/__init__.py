"""Retention: removing old events under a policy, and proving what was removed.

* :mod:`.config` — the ``[retention]`` table as written (types only).
* :mod:`.policy` — its validated form (:class:`Policy`, :func:`resolve_policy`).
* :mod:`.plan` — which events a policy removes now (a dry run, group by group).
* :mod:`.receipts` — the runs a plan removes and the receipts recording them.
* :mod:`.apply` — applying a plan safely (walk, link checks, receipts, removal).
* :mod:`.schedule` — applying the policy on a timer (``retention run``, ``serve``).

How ``verify`` bridges the holes receipts record: :mod:`eventvault.integrity.bridges`.
"""

from __future__ import annotations

from .config import RetentionConfig, RetentionRule
from .policy import RECEIPT_TYPE, Policy, Rule, Window, resolve_policy

__all__ = [
    "RECEIPT_TYPE",
    "Policy",
    "RetentionConfig",
    "RetentionRule",
    "Rule",
    "Window",
    "resolve_policy",
]
