"""CPU time (user + system, this process) per appended event on the file backend.

Single-event appends and batches of 1000, with ``fsync = "never"`` and
``"always"``. CPU time is far less sensitive than wall time to other processes
sharing the cores, so two versions can be compared on a busy machine: run this
with each checkout's interpreter, alternately, and compare medians
(docs/reliability.md quotes such a comparison).
"""

from __future__ import annotations

import resource
import tempfile

from eventvault import NewEvent
from eventvault.backends.file import FileEventStore


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(fsync: str, n: int = 5000, batches: int = 50) -> tuple[float, float]:
    with (
        tempfile.TemporaryDirectory() as d,
        FileEventStore(d, fsync=fsync, segment_max_bytes=1 << 22) as s,  # type: ignore[arg-type]
    ):
        events = [NewEvent(type="t.x", data={"i": i, "pad": "x" * 100}) for i in range(n)]
        s.append(NewEvent(type="warm"))
        t = cpu()
        for e in events:
            s.append(e)
        single = (cpu() - t) / n * 1e6
        groups = [
            [NewEvent(type="t.x", data={"i": i, "pad": "x" * 100}) for i in range(1000)]
            for _ in range(batches)
        ]
        t = cpu()
        for b in groups:
            s.append(b)
        batch = (cpu() - t) / (1000 * batches) * 1e6
    return single, batch


def main() -> None:
    out = []
    for fsync in ("never", "always"):
        single, batch = measure(fsync)
        out.append(f"{fsync}: single {single:.1f} us/event, batch {batch:.2f} us/event")
    print("; ".join(out))


if __name__ == "__main__":
    main()
