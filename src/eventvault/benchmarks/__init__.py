"""Measuring eventvault, kept out of the library core: ``eventvault bench`` (a thin
command in :mod:`eventvault.cli.bench`) and the soak test call into this package.

* :mod:`.workloads` — the events, the append / read / retention / copy workloads;
* :mod:`.compare` — the same appends through the ``eventsourcing`` library;
* :mod:`.runner` — scratch stores, repeated runs, the fresh reader process;
* :mod:`.report` — the tables the command prints;
* :mod:`.soak` — sustained mixed load, then an account of every acknowledged event.

Nothing in the library imports this package.
"""
