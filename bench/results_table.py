"""Makes the README's results table from results/<problem>/<formulation>/results.json.

Usage: python bench/results_table.py [--results results]
"""

from __future__ import annotations

import argparse
import json
import os


def _fmt_errors(errors: dict) -> str:
    return ", ".join(f"{k} {v:.1e}" for k, v in errors.items()) or "n/a"


def _fmt_time(s) -> str:
    if s is None:
        return "n/a"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def table(root: str) -> str:
    from fluxkern import problems

    rows = [
        "| problem | fluxkern flux form: rel. L2 | time | epochs | fluxkern PINN form: rel. L2 "
        "| time | epochs | reference rel. L2 | reference time | reference epochs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in problems.names():
        prob = problems.get(name)
        cells = [name]
        for form in ("flux", "pinn"):
            path = os.path.join(root, name, form, "results.json")
            if os.path.exists(path):
                r = json.load(open(path))
                errs = dict(r["errors"])
                if "max_centreline_deviation" in r:  # cavity: against Ghia et al. (1982)
                    errs["max centreline dev."] = r["max_centreline_deviation"]
                cells += [_fmt_errors(errs), _fmt_time(r["wall_time_s"]), str(r["epochs"])]
            else:
                cells += ["not run", "", ""]
        ref = prob.reference
        cells += [
            _fmt_errors(ref.get("errors", {})),
            _fmt_time(ref.get("wall_time_s")),
            str(ref.get("epochs") or "n/a"),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results")
    args = p.parse_args(argv)
    print(table(args.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
