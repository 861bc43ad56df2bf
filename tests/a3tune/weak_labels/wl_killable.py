"""Run the weak-label pipeline with the stub proposer/scorer (the kill-and-resume test SIGKILLs it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wl_helpers import GridProposer, brightness_scorer  # noqa: E402

from medpeft.a3tune.weak_labels import generate_weak_labels, read_samples  # noqa: E402

if __name__ == "__main__":
    csv_path, out, flush_every, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    generate_weak_labels(
        read_samples(csv_path),
        out,
        proposer=GridProposer(delay),
        scorer=brightness_scorer(),
        dataset="slake",
        flush_every=flush_every,
        progress=False,
    )
