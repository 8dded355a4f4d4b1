"""A writer process for the multi-process and crash tests.

Appends batches in a loop and, *after* each append returns, records the ids it
was acknowledged for in its own ack file (one id per line, flushed). So every id
in an ack file was acknowledged; the store may hold more (killed between the
append returning and the ack being written), never fewer.
"""

from __future__ import annotations

import os
import random
import sys

from eventvault import NewEvent
from eventvault.backends.file import FileEventStore


def main() -> None:
    path, ack_path, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    seg = int(sys.argv[5]) if len(sys.argv) > 5 else 16384
    ack = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with FileEventStore(path, segment_max_bytes=seg) as store:
        done = 0
        while count < 0 or done < count:
            n = rng.choice((1, 1, 2, 5, 20))
            batch = [
                NewEvent(
                    type="crash.test",
                    stream=f"w{seed}",
                    data={"i": done + k, "pad": "x" * rng.randrange(200)},
                )
                for k in range(n)
            ]
            store.append(batch)
            os.write(ack, "".join(f"{e.id}\n" for e in batch).encode())
            done += n
    os.close(ack)


if __name__ == "__main__":
    main()
