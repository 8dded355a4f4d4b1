"""Integrity: what makes a stored event provably the one written.

* :mod:`.canonical` — the canonical bytes of an event (what is hashed).
* :mod:`.chain` — the hash chain over them, and verifying it.
* :mod:`.bridges` — crossing the holes retention left, by its receipts.

(Nothing is imported here: :mod:`eventvault.model` imports :mod:`.canonical`, and
:mod:`.chain` imports the model, so this package must not import them eagerly.)
"""
