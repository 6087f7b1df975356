"""The local cluster: a Kubernetes API server over the local object store (`apiserver/`)."""
