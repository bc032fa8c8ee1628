"""`python -m fluxkern ...`: the fluxkern command (also `torchrun -m fluxkern solve NAME`)."""

from fluxkern.cli import main

raise SystemExit(main())
