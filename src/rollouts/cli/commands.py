"""Registers every verb module on the `rollouts` app (one import per verb family)."""

from __future__ import annotations

from rollouts.cli import (
    analysis,  # noqa: F401
    analysisruns,  # noqa: F401
    controller,  # noqa: F401
    dashboard,  # noqa: F401
    demo,  # noqa: F401
    describe,  # noqa: F401
    doctor,  # noqa: F401
    get,  # noqa: F401
    history,  # noqa: F401
    lint,  # noqa: F401
    load,  # noqa: F401
    logs,  # noqa: F401
    objects,  # noqa: F401
    patching,  # noqa: F401
    portforward,  # noqa: F401
    report,  # noqa: F401
    simulate,  # noqa: F401
    verbs,  # noqa: F401
)
