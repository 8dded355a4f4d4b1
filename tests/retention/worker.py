"""Applies retention slowly, printing each step, so a test can SIGKILL it mid-way."""

from __future__ import annotations

import sys
import time
from datetime import datetime

from eventvault import open_store


def main() -> None:
    config, now = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    store = open_store(config)
    if hasattr(store, "retention_batch"):
        store.retention_batch = 20

    def step(done: int, total: int | None) -> None:
        print(f"step {done}", flush=True)
        time.sleep(0.2)

    store.apply_retention(now=now, progress=step)
    print("finished", flush=True)
    store.close()


if __name__ == "__main__":
    main()
