"""One process of the multi-process stress test (``test_stress.py``).

``python stress_worker.py ROLE STORE OUT SEED SEGMENT_MAX_BYTES STOP_FILE``

Roles: ``writer`` (appends as fast as it can), ``quiet`` (appends, then sleeps for
seconds while others roll on), ``applier`` (applies retention to ``debug.*`` at a
random cut, in a loop), ``tailer`` (follows the store from where its last
incarnation stopped), ``reader`` (random queries). Every role writes what it was
acknowledged or shown to ``OUT`` (one line each, flushed after the call returned),
so a ``kill -9`` at any instant leaves only true lines (the last may be torn).

When ``STOP_FILE`` appears, a surviving process proves it is not wedged: it
appends one event and reads it back, writes ``final <position>`` and exits 0. Any
exception writes ``ERROR ...`` and exits 3.
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
from datetime import timedelta

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.config import RetentionConfig, RetentionRule
from eventvault.retention import resolve_policy


def main() -> None:
    role, path, out_path, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seg, stop = int(sys.argv[5]), sys.argv[6]
    rng = random.Random(seed)
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def say(line: str) -> None:
        os.write(out, (line + "\n").encode())

    rule = RetentionRule(types=["debug.*"], max_age="1h")
    policy = resolve_policy(RetentionConfig(rules=[rule]))
    last = int(sys.argv[7]) if len(sys.argv) > 7 else 0  # the tailer's resume point
    try:
        with FileEventStore(path, segment_max_bytes=seg) as store:

            def append(n: int) -> None:
                batch = [
                    NewEvent(
                        type="debug.x" if rng.random() < 0.5 else "keep.x",
                        stream=f"{role}{seed}",
                        data={"pad": "x" * rng.randrange(300)},
                    )
                    for _ in range(n)
                ]
                events = store.append(batch).events
                say("\n".join(f"ack {e.id} {e.position} {e.type}" for e in events))

            while not os.path.exists(stop):
                if role == "writer":
                    append(rng.choice((1, 1, 2, 5, 20)))
                elif role == "quiet":
                    append(rng.choice((1, 3)))
                    time.sleep(rng.uniform(1.0, 4.0))
                elif role == "applier":
                    debug = store.read(
                        Query(types=["debug.x"], limit=200, reverse=rng.random() < 0.5)
                    ).events
                    if debug:
                        cut = rng.choice(debug).recorded_at + timedelta(hours=1, microseconds=1)
                        store.apply_retention(policy=policy, now=cut)
                    time.sleep(rng.uniform(0.05, 0.4))
                elif role == "tailer":
                    for ev in store.subscribe(after=last, poll_interval=0.05):
                        if ev.position <= last:
                            raise AssertionError(f"tail went back: {ev.position} after {last}")
                        last = ev.position
                        say(f"seen {ev.id} {ev.position}")
                        if os.path.exists(stop):
                            break
                elif role == "reader":
                    query = Query(
                        types=rng.choice([[], ["keep.x"], ["debug.*"]]),
                        reverse=rng.random() < 0.5,
                        limit=rng.choice((10, 100, 1000)),
                    )
                    page = store.read(query)
                    got = [e.position for e in page.events]
                    if got != sorted(got, reverse=query.reverse) or len(set(got)) != len(got):
                        raise AssertionError(f"a page out of order: {got[:20]}")
                else:
                    raise ValueError(role)
            rec = store.append(NewEvent(type="keep.final", stream=f"{role}{seed}")).events[0]
            say(f"ack {rec.id} {rec.position} {rec.type}")
            assert store.get(rec.id) == rec
            say(f"final {rec.position}")
    except BaseException:
        say("ERROR " + traceback.format_exc().replace("\n", " | "))
        os.close(out)
        sys.exit(3)
    os.close(out)


if __name__ == "__main__":
    main()
