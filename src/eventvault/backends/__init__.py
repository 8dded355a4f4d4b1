"""Storage backends. Each module registers itself with :mod:`eventvault.registry`."""
