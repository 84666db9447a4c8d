"""Every benchmark of ``uniwav bench``; the same as ``uniwav bench`` (see src/uniwav/bench/run.py).

    python benchmarks/run_all.py --quick --json bench.json --data data/demo
"""

import sys

from uniwav.bench.run import main

if __name__ == "__main__":
    sys.exit(main())
