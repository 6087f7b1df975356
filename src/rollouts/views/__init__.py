"""What `get rollout`, `list rollouts` and the dashboard show: one data model (model.py) built from store
objects (info.py), and text renderers for it (tree.py, tables.py). Nothing here writes to the store.

This package imports only the standard library and the store's protocol so the CLI's fast path stays fast."""
