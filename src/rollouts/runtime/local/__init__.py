"""The local runtime: pods as supervised processes on this host, an ingress proxy and service balancers."""
