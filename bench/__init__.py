"""fluxkern's benchmark scripts. `python -m bench` runs the side-by-side comparison (run.py).

The scripts import each other by plain module name (they also run as `python bench/x.py`), so
the package puts its own folder on sys.path.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# torch.compile contenders: compile in this process, no pool of compile workers left running
# beside the timings on a small machine.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
