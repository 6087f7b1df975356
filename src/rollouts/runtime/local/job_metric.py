"""The `job` metric provider for commands that run without a cluster (`rollouts analyze --once`, `doctor`):
each measurement's Job runs here through the local cluster's own Job planner and attempt loop, with the same
limits, retries and messages as on the cluster. The operator never uses it: it hands its provider a store."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rollouts.analysis.providers.job import JobMetricProvider
from rollouts.runtime.local.images import ImageResolver
from rollouts.runtime.local.jobs import run_job_locally
from rollouts.store.protocol import JSONObject


def local_job_provider(*, images: Path | None = None, retry_delay_seconds: float = 10.0,
                       stop_grace_seconds: float = 5.0) -> JobMetricProvider:
    """A store-less `JobMetricProvider` that runs each Job here; `images` is the image map file, if any."""

    async def run_here(job: JSONObject, folder: Path, *, base_env: Mapping[str, str], retry_delay: float,
                       default_grace: float) -> JSONObject:
        return await run_job_locally(job, folder, images=ImageResolver(images), base_env=base_env,
                                     retry_delay=retry_delay, default_grace=default_grace)

    return JobMetricProvider(retry_delay_seconds=retry_delay_seconds, stop_grace_seconds=stop_grace_seconds,
                             run_here=run_here)
