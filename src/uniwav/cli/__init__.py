"""The ``uniwav`` command: one subcommand per module."""
