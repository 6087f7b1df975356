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
- `is_leader` turns false by the clock alone once `renew_deadline` has passed since the last successful
  renewal was sent, even before the renew loop gets to run (an event loop blocked by a long reconcile):
  the operator checks it before each key, and `fence()` before each write (`FencedKubeStore`), so a leader
  that cannot renew stops acting mid-reconcile too, with `lease_duration - renew_deadline` (5 s) to spare
  for a write already on the wire.
- A process still starting (caches filling) can `start()` with `may_acquire` cleared: it only reads the
  Lease, so that its view of the holder's expiry starts early; the operator sets it once synced. A
  standby that was slow to start (40 s on a loaded machine) then takes over a killed leader's Lease one
  lease duration after it first saw it, not one lease duration after its caches filled.
- Every attempt is bounded (`renew_deadline`): a request the API server never answers is a failed attempt,
  not a campaign or a renew loop stuck on it.
- No jitter on the acquire retry (client-go sleeps 1 to 2.2 retry periods): it spreads many standbys
  apart, while here a 409 settles any race, and a fixed 2 s keeps a standby's takeover within
  `lease_duration + retry_period` of the record it last saw change.
- `leaseTransitions` counts changes of holder; `acquireTime` is when the current holder took it.
- `stop(release=True)` (graceful shutdown) clears the holder so another replica takes over at once; the
  release is bounded too (`RELEASE_SECONDS`), so a shutdown never waits on an API server that hangs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from rollouts.kube.client import KubeStore
from rollouts.store.protocol import StoreError

log = logging.getLogger("rollouts.controller")

# Giving the Lease up on shutdown is a courtesy (the Lease expires anyway): never wait longer than this.
RELEASE_SECONDS = 3.0


class LeaseLost(StoreError):
    """A write refused before it was sent: this process no longer holds the Lease it acts under."""


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
        self._renewed_at = float("-inf")  # when the last successful acquire/renew was sent (monotonic)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # Cleared: the loop only reads the Lease (a process still filling its caches starts the expiry clock
        # of the current holder's record early, without taking a Lease it could not act on yet).
        self.may_acquire = asyncio.Event()
        self.may_acquire.set()
        # The Lease request under way and when it was sent. It is never cancelled: cancelling a request in
        # flight can leave its task unwinding forever (its TLS connection's close waits on the peer), which
        # once kept a stopping operator renewing its Lease without acting. A request that takes too long is
        # left to end by its own HTTP timeout and the attempt counts as failed.
        self._inflight: asyncio.Task[bool] | None = None
        self._inflight_sent = 0.0
        self._failure = ""  # the last failed attempt's reason, logged once per change

    @property
    def is_leader(self) -> bool:
        """Leading, and the last renewal was sent less than `renew_deadline` ago (by this clock)."""
        return self.leading.is_set() and time.monotonic() < self._renewed_at + self.renew_deadline

    def fence(self) -> None:
        """Raise `LeaseLost` unless this process may act now (see `is_leader`)."""
        if not self.is_leader:
            raise LeaseLost(f"{self.identity} does not hold the Lease {self.namespace}/{self.name}: "
                            "not writing")

    # -- one attempt ---------------------------------------------------------------------------------

    async def try_acquire_or_renew(self, acquire: bool = True) -> bool:
        """Read the Lease and, with `acquire`, take or renew it when it is free, expired or ours."""
        now = _now()
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != 404 or not acquire:
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
        if not acquire:
            return False  # only watching the record (its expiry clock runs from now on)
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
        campaign = time.monotonic()
        while not await self._attempt():
            if await self._pause(self.retry_period):
                return  # stop() asked
        self.leading.set()
        now = time.monotonic()
        log.info("lease %s/%s acquired by %s after %.1fs of campaign (record last seen changing %.1fs ago)",
                 self.namespace, self.name, self.identity, now - campaign, now - self._observed_at)
        if self.on_started_leading:
            self.on_started_leading()
        try:
            await self._renew_until_lost()
        finally:
            self._stop_leading()

    async def _pause(self, seconds: float) -> bool:
        """Sleep `seconds`; True at once if stop() was asked meanwhile."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _attempt(self, timeout: float | None = None) -> bool:
        """One bounded try; True when this process holds the Lease as of when the attempt was sent."""
        limit = timeout or self.renew_deadline
        task = self._inflight
        if task is None or task.done():
            if task is not None and not task.cancelled():
                task.exception()  # an abandoned attempt's outcome is read, so asyncio does not report it
            task = self._inflight = asyncio.ensure_future(self.try_acquire_or_renew(self.may_acquire.is_set()))
            self._inflight_sent = time.monotonic()
        # else: the previous attempt is still under way: this one waits for it (and counts from its send)
        sent = self._inflight_sent
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not task.done():
            if not self._stopping.is_set():
                self._failed(f"no answer from the API server in {limit:.1f}s")
            return False
        if task.cancelled():
            return False
        exc = task.exception()
        if exc is not None:  # an unreachable API server (httpx errors), a refused write: a failed attempt
            self._failed(f"{type(exc).__name__}: {exc}")
            return False
        won = task.result()
        if won:
            self._renewed_at = sent
            if self._failure:
                log.info("lease %s/%s: %s's attempts succeed again", self.namespace, self.name, self.identity)
            self._failure = ""
        return won

    def _failed(self, reason: str) -> None:
        if reason != self._failure:
            log.warning("lease %s/%s: %s's attempt failed: %s", self.namespace, self.name, self.identity,
                        reason)
        self._failure = reason

    async def _renew_until_lost(self) -> None:
        while True:
            if await self._pause(self.retry_period):
                return  # stop() asked
            remaining = self._renewed_at + self.renew_deadline - time.monotonic()
            renewed = remaining > 0 and await self._attempt(remaining)
            if renewed:
                continue
            if self.observed_holder not in ("", self.identity):
                # Someone else holds it (this one was partitioned past its lease): no use retrying.
                log.warning("lease %s/%s: %s stops leading: %s holds it", self.namespace, self.name,
                            self.identity, self.observed_holder)
                return
            if not self.is_leader:
                log.warning("lease %s/%s: %s stops leading: no renewal in %.0fs", self.namespace, self.name,
                            self.identity, self.renew_deadline)
                return

    def _stop_leading(self) -> None:
        if self.leading.is_set():
            self.leading.clear()
            if self.on_stopped_leading:
                self.on_stopped_leading()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> asyncio.Task[None]:
        """Campaign (then lead) in a task; the running one if it is still going."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self.run())
        return self._task

    async def stop(self, release: bool = True) -> None:
        """Stop electing; a leader stops leading first, then (with `release`) gives the Lease up. Bounded:
        the loop is asked to end (never cancelled mid-request), and waited for at most `RELEASE_SECONDS`."""
        was_leader = self.leading.is_set()
        self._stopping.set()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=RELEASE_SECONDS)
            if not done:
                log.warning("lease %s/%s: %s's election loop did not end in %.0fs: left behind", self.namespace,
                            self.name, self.identity, RELEASE_SECONDS)
        self._stop_leading()
        if release and was_leader:
            await self.release()

    async def release(self, timeout: float = RELEASE_SECONDS) -> bool:
        """Clear the holder if it is still this process (bounded by `timeout`, never cancelling a request in
        flight: it is left to end by its HTTP timeout); False if not released (the Lease then expires)."""
        task = asyncio.ensure_future(self._release())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            log.warning("lease %s/%s: %s could not release it in %.0fs", self.namespace, self.name, self.identity,
                        timeout)
            return False
        exc = task.exception()
        if exc is not None:
            log.warning("lease %s/%s: %s could not release it: %s: %s", self.namespace, self.name,
                        self.identity, type(exc).__name__, exc)
            return False
        return task.result()

    async def _release(self) -> bool:
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            await asyncio.wait({inflight})  # a renewal under way would make the release's write a 409
        lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        if lease.spec is None or lease.spec.holderIdentity != self.identity:
            return False
        lease.spec.holderIdentity = ""
        lease.spec.leaseDurationSeconds = 1
        lease.spec.renewTime = _now()
        await self.client.replace(lease)
        log.info("lease %s/%s released by %s", self.namespace, self.name, self.identity)
        return True


class FencedKubeStore(KubeStore):
    """A `KubeStore` whose writes (every request but GET) first ask `fence` (`LeaderElector.fence`), which
    raises when this process no longer holds the Lease; reads go through."""

    def __init__(self, store: KubeStore, fence: Callable[[], None]) -> None:
        super().__init__(store.config, timeout=store.timeout, field_manager=store.field_manager,
                         user_agent=store.user_agent)
        self.fence = fence

    def request(self, method: str, path: str, params: Any = None, body: Any = None,
                content_type: str = "application/json") -> Any:
        if method != "GET":
            self.fence()
        return super().request(method, path, params, body, content_type)
