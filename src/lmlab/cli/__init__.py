"""The ``lmlab`` command: one thin module per command group (parse, call the library, print)."""
