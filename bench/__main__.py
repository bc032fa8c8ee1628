"""`python -m bench`: the side-by-side benchmarks (bench/run.py)."""

from run import main

raise SystemExit(main())
