"""Print the mutation score of each module `make mutation` mutates: the share of mutants the tests killed.

Reads `mutmut results --all true` (one `module.function__mutmut_N: status` line per mutant). Killed, timed out
and caught by the type check count as killed; survivors and mutants no selected test reaches count against.
Survivors are listed after the scores (`mutmut show NAME` shows one)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict

MODULES = {
    "core.money": "core/money.py",
    "payments.pricing": "payments/pricing.py",
    "payments.states": "payments/states.py",
    "payments.freezing": "payments/freezing.py",
    "payments.lifecycle": "payments/lifecycle.py",
}
KILLED = {"killed", "timeout", "caught by type check"}
SKIPPED = {"skipped", "not checked"}


def main() -> int:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        module = next((m for m in MODULES if name.startswith(f"{m}.")), None)
        if module is None or not status:
            continue
        counts[module][status] += 1
        if status not in KILLED | SKIPPED:
            survivors[module].append(f"{name} ({status})")
    total_killed = total = 0
    print(f"{'module':28} {'mutants':>8} {'killed':>8} {'score':>7}")
    for module, path in MODULES.items():
        seen = sum(n for status, n in counts[module].items() if status not in SKIPPED)
        killed = sum(counts[module][s] for s in KILLED)
        total, total_killed = total + seen, total_killed + killed
        score = f"{100 * killed / seen:.1f}%" if seen else "-"
        print(f"{path:28} {seen:>8} {killed:>8} {score:>7}")
    print(f"{'all':28} {total:>8} {total_killed:>8} {100 * total_killed / max(total, 1):.1f}%")
    for module, names in survivors.items():
        print(f"\nsurvived in {MODULES[module]}:")
        for name in names:
            print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
