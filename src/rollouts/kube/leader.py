"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm and defaults.

- Timings: lease 15 s, renew deadline 10 s, retry 2 s (client-go's and Argo's defaults).
- Acquire or renew = get the Lease, then create it, or PUT it with the resourceVersion that was read: a
  409 means someone else wrote first and this attempt lost.
- Another holder's lease counts as expired only `lease_duration` after *this* process saw its record
  change (local monotonic clock; clocks of different machines are never compared), as client-go does.
- A leader retries renewing every `retry_period`; if no renewal succeeded within `renew_deadline` of the
  last one it stops leading (`on_stopped_leading`) and `run` returns. The deadline counts from the
  moment the last successful renewal was *sent*, and others wait `lease_duration` from when they *saw*
  it, so the old leader has stopped acting at least `lease_duration - renew_deadline` before anyone can
  take the Lease over.
- `leaseTransitions` counts changes of holder; `acquireTime` is when the current holder took it.
- `stop(release=True)` (graceful shutdown) clears the holder so another replica takes over at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from lightkube import ApiError, AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    def __init__(self, client: AsyncClient, namespace: str, name: str, identity: str, *,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 on_started_leading: Callable[[], None] | None = None,
                 on_stopped_leading: Callable[[], None] | None = None,
                 on_new_leader: Callable[[str], None] | None = None) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError(f"leader election needs lease_duration ({lease_duration}) > renew_deadline "
                             f"({renew_deadline}) > retry_period ({retry_period}) > 0")
        self.client, self.namespace, self.name, self.identity = client, namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.on_started_leading, self.on_stopped_leading = on_started_leading, on_stopped_leading
        self.on_new_leader = on_new_leader
        self.leading = asyncio.Event()
        self.observed_holder = ""
        self._observed: tuple[str, str, int] | None = None  # (holder, renewTime, transitions)
        self._observed_at = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    # -- one attempt ---------------------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        now = _now()
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                return False
            spec = LeaseSpec(holderIdentity=self.identity, leaseDurationSeconds=int(round(self.lease_duration)),
                             acquireTime=now, renewTime=now, leaseTransitions=0)
            try:
                await self.client.create(Lease(metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                                               spec=spec))
            except ApiError:
                return False  # someone created it first
            self._observe(self.identity, now.isoformat(), 0)
            return True
        spec = lease.spec or LeaseSpec()
        holder = spec.holderIdentity or ""
        transitions = spec.leaseTransitions or 0
        self._observe(holder, spec.renewTime.isoformat() if spec.renewTime else "", transitions)
        duration = float(spec.leaseDurationSeconds or self.lease_duration)
        if holder and holder != self.identity and time.monotonic() < self._observed_at + duration:
            return False  # held by someone else and not expired as far as we have seen
        if holder != self.identity:
            spec.acquireTime = now
            spec.leaseTransitions = transitions + 1
        spec.holderIdentity = self.identity
        spec.renewTime = now
        spec.leaseDurationSeconds = int(round(self.lease_duration))
        lease.spec = spec
        try:
            # replace() sends metadata.resourceVersion as read: a 409 means another writer won.
            await self.client.replace(lease)
        except ApiError:
            return False
        self._observe(self.identity, now.isoformat(), spec.leaseTransitions or 0)
        return True

    def _observe(self, holder: str, renew_time: str, transitions: int) -> None:
        record = (holder, renew_time, transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        if holder != self.observed_holder:
            self.observed_holder = holder
            if self.on_new_leader and holder:
                self.on_new_leader(holder)

    # -- the loop --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Acquire (retrying), lead while renewals succeed, and return once leadership is lost."""
        while not await self._attempt():
            await asyncio.sleep(self.retry_period)
        self.leading.set()
        if self.on_started_leading:
            self.on_started_leading()
        try:
            await self._renew_until_lost()
        finally:
            self._stop_leading()

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except Exception:  # noqa: BLE001 - an unreachable API server (httpx errors) is a failed attempt
            return False

    async def _renew_until_lost(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_period)
            sent = time.monotonic()
            remaining = last + self.renew_deadline - sent
            if remaining <= 0:
                return
            try:
                renewed = await asyncio.wait_for(self._attempt(), remaining)
            except TimeoutError:
                return
            if renewed:
                last = sent
            elif time.monotonic() >= last + self.renew_deadline:
                return

    def _stop_leading(self) -> None:
        if self.leading.is_set():
            self.leading.clear()
            if self.on_stopped_leading:
                self.on_stopped_leading()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self._task

    async def stop(self, release: bool = True) -> None:
        """Stop electing; a leader stops leading first, then (with `release`) gives the Lease up."""
        was_leader = self.is_leader
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._stop_leading()
        if release and was_leader:
            await self.release()

    async def release(self) -> bool:
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
            if lease.spec is None or lease.spec.holderIdentity != self.identity:
                return False
            lease.spec.holderIdentity = ""
            lease.spec.leaseDurationSeconds = 1
            lease.spec.renewTime = _now()
            await self.client.replace(lease)
            return True
        except ApiError:
            return False
