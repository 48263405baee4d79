"""Several replicas of one server behind one caller: which to send the next request to, which are out.

No I/O here: the sync and async service clients (client.py) and the grader's OpenAI engine share it.

    replicas = Replicas("http://a:8000,http://b:8000")
    url, probe = replicas.choose(tried)    # probe: ask /readyz first, the replica was taken out
    replicas.begin(url) ... replicas.end(url)
    replicas.down(url, "ConnectError: ...")  /  replicas.up(url)

A request goes to the replica with the fewest requests in flight (ties: the one sent fewest). A replica
that refuses connections or fails its readiness probe is taken out; once its wait has passed, the next
request probes it first (and brings it back if it is ready); each failed probe doubles the wait, up to
`max_wait_s`. When every replica not yet tried for a request is out, the one due soonest is probed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

__all__ = ["Replicas", "parse_urls"]


def parse_urls(urls: str | Sequence[str], what: str = "url") -> tuple[str, ...]:
    """'http://a:8000, http://b:8000/' or a list -> ('http://a:8000', 'http://b:8000'); ValueError naming `what`
    (unless it is empty: a config field's error is named by its validator)."""
    parts = urls.split(",") if isinstance(urls, str) else [u for x in urls for u in str(x).split(",")]
    where = f"{what}: " if what else ""
    out: list[str] = []
    for part in parts:
        url = part.strip().rstrip("/")
        if not url:
            continue
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{where}{url!r} is not an http(s) URL")
        if url not in out:
            out.append(url)
    if not out:
        raise ValueError(f"{where}no URL given")
    return tuple(out)


@dataclass
class _Replica:
    url: str
    in_flight: int = 0
    sent: int = 0
    out_until: float | None = None  # monotonic time of the next probe; None while in service
    wait_s: float = 0.0  # the current wait between probes (doubles while it stays out)
    last_error: str | None = None


class Replicas:
    """The replicas' state; thread-safe (the sync client may be shared by a trainer's threads)."""

    def __init__(
        self,
        urls: str | Sequence[str],
        probe_after_s: float = 1.0,
        max_wait_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        what: str = "url",
    ) -> None:
        self._all = {u: _Replica(u) for u in parse_urls(urls, what)}
        self.probe_after_s, self.max_wait_s, self._clock = probe_after_s, max_wait_s, clock
        self._lock = threading.Lock()

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self._all)

    def choose(self, tried: Collection[str] = ()) -> tuple[str, bool] | None:
        """(url, probe first?) for the next attempt of a request that already tried `tried`; None if all were."""
        with self._lock:
            now = self._clock()
            left = [r for r in self._all.values() if r.url not in tried]
            out = sorted((r for r in left if r.out_until is not None), key=lambda r: r.out_until or 0.0)
            if out and (out[0].out_until or 0.0) <= now:
                return out[0].url, True  # due: probe it (it rejoins if ready)
            serving = [r for r in left if r.out_until is None]
            if serving:
                return min(serving, key=lambda r: (r.in_flight, r.sent)).url, False
            return (out[0].url, True) if out else None

    def begin(self, url: str) -> None:
        with self._lock:
            r = self._all[url]
            r.in_flight += 1
            r.sent += 1

    def end(self, url: str) -> None:
        with self._lock:
            self._all[url].in_flight -= 1

    def down(self, url: str, reason: str) -> None:
        """Take `url` out until its next probe (the wait doubles while it stays out)."""
        with self._lock:
            r = self._all[url]
            r.wait_s = self.probe_after_s if r.out_until is None else min(2 * r.wait_s, self.max_wait_s)
            r.out_until, r.last_error = self._clock() + r.wait_s, reason

    def up(self, url: str) -> None:
        with self._lock:
            r = self._all[url]
            r.out_until, r.wait_s = None, 0.0

    def is_out(self, url: str) -> bool:
        return self._all[url].out_until is not None

    def state(self) -> list[dict]:
        """Per replica: url, in_flight, sent, out (bool), last_error: for logs and errors."""
        with self._lock:
            return [
                {"url": r.url, "in_flight": r.in_flight, "sent": r.sent, "out": r.out_until is not None,
                 "last_error": r.last_error}
                for r in self._all.values()
            ]  # fmt: skip
