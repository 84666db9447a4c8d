"""``uniwav bench [--quick] [--json OUT.json] [--device cpu|cuda] [--data DATA]``: see ``uniwav.bench.run``."""

from uniwav.bench.run import add_arguments, run  # noqa: F401
