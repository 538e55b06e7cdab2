"""Kill rate per module from mutmut's results (`make mutation` runs this after `mutmut run`).

Reads ``mutmut results --all true`` and prints, per mutated module, killed / total and the rate,
then the surviving mutants (``mutmut show <name>`` shows one). Exits 1 when a module is under
``--goal`` (default 0.9).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys

KILLED = {"killed", "timeout"}
NOT_COUNTED = {"not checked", "skipped"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goal", type=float, default=0.9, help="minimum kill rate per module")
    args = parser.parse_args()
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    )
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    survivors: dict[str, list[str]] = collections.defaultdict(list)
    for line in done.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name or status in NOT_COUNTED:
            continue
        parts = name.split(".")
        cut = next((i for i, p in enumerate(parts) if p.startswith(("x_", "x\u01c1"))), -1)
        module = ".".join(parts[:cut])
        counts[module][status] += 1
        if status not in KILLED:
            survivors[module].append(name)
    below = False
    print(f"{'module':50s} {'killed':>7s} {'total':>6s} {'rate':>6s}")
    for module in sorted(counts):
        total = sum(counts[module].values())
        killed = sum(n for s, n in counts[module].items() if s in KILLED)
        rate = killed / total if total else 1.0
        below |= rate < args.goal
        print(f"{module:50s} {killed:7d} {total:6d} {rate:6.1%}")
    for module, names in sorted(survivors.items()):
        print(f"\nsurviving in {module} ({len(names)}):")
        for name in names:
            print(f"  {name}")
    return 1 if below else 0


if __name__ == "__main__":
    raise SystemExit(main())
