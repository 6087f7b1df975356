"""Registers every verb module on the `rollouts` app (one import per verb family)."""

from __future__ import annotations
