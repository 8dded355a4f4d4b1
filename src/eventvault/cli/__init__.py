"""The eventvault command line (see :mod:`.main`)."""
