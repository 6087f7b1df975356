"""rollouts: progressive delivery that reads Argo Rollouts manifests."""

__version__ = "0.1.0"
