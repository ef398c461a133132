"""Subcommands of ``xrseg``: one module each, discovered by :mod:`xrseg.cli` (each defines ``register``)."""
