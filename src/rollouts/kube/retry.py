"""Read-modify-write with optimistic concurrency: re-read and retry when a write is answered 409
Conflict (client-go's `retry.RetryOnConflict`), for any `ObjectStore` (the Kubernetes client or SQLite)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from rollouts.store.protocol import Conflict, JSONObject, ObjectStore

# client-go's retry.DefaultRetry: 5 steps, 10 ms, factor 1, jitter 0.1 (here without jitter).
STEPS = 5
DELAY = 0.01


def update_with_retry(store: ObjectStore, kind: str, namespace: str, name: str,
                      mutate: Callable[[JSONObject], JSONObject | None],
                      subresource: Literal["status"] | None = None, steps: int = STEPS,
                      delay: float = DELAY) -> JSONObject:
    """Get the object, let `mutate` change it (in place or by returning a new one), write it with the
    resourceVersion that was read; on 409 start again from a fresh read, at most `steps` times.

    `mutate` returning the object unchanged still writes (the server keeps a no-op write cheap); raise
    from it to give up. The last `Conflict` propagates when every attempt lost."""
    for attempt in range(steps):
        current = store.get(kind, namespace, name)
        changed = mutate(current)
        obj = current if changed is None else changed
        try:
            return store.update_status(obj) if subresource == "status" else store.update(obj)
        except Conflict:
            if attempt == steps - 1:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop either returns or raises
