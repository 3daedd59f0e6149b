"""Progress of one `Generator.generate` call: a tqdm bar on a terminal; elsewhere (Slurm logs, a file), where a bar
shows nothing, a log line every `PROGRESS_INTERVAL` seconds with done/total, rate and ETA."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("ifforge")
PROGRESS_INTERVAL = 30.0  # seconds between progress lines off a terminal (read at each update: tests shorten it)


def _on_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """`update()` once per finished request (from any thread, under the caller's lock)."""

    def __init__(self, total: int, initial: int, desc: str):
        from tqdm.auto import tqdm  # here, not at the top: option modules import this at start-up (~60 ms)

        self.total, self.done, self.initial, self.desc = total, initial, initial, desc
        self.started = self.last = time.monotonic()
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="req", dynamic_ncols=True, leave=False,
                        disable=not _on_terminal())

    def update(self, **postfix: Any) -> None:
        self.done += 1
        if not self.bar.disable:
            self.bar.update(1)
            self.bar.set_postfix(refresh=False, **postfix)
            return
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL and self.done < self.total:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        sent, elapsed = self.done - self.initial, max(now - self.started, 1e-9)
        rate = sent / elapsed
        eta = _duration((self.total - self.done) / rate) if rate > 0 else "unknown"
        return (f"[{self.desc}] {self.done}/{self.total} requests ({self.done / max(1, self.total):.0%}), "
                f"{rate:.1f} req/s, ETA {eta}")

    def close(self) -> None:
        self.bar.close()
