"""The client side of the Kubernetes API, shared by the CLI, dashboard and operator.

`config` resolves the kubeconfig, `kinds` is the table of kinds we use, `resources` their lightkube
classes, `client` the synchronous object-store client over HTTP, `informer` list+watch caches,
`workqueue` the controller's key queue and `leader` Lease leader election. Importing this package is
cheap: nothing here imports lightkube until an async or lightkube-specific piece is used.
"""
