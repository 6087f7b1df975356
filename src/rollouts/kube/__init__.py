"""The client side of the Kubernetes API, shared by the CLI, dashboard and operator.

`config` resolves the kubeconfig; `kinds` is the table of kinds we use (standard library only);
`resources` their lightkube classes; `client.KubeStore` the synchronous object-store client over HTTP
(standard library only, for the CLI's hot path), with `feed` its change feed of kept-open watches;
`retry` re-reads and retries on 409; `informer` list+watch caches and `workqueue` the key queue of the
operator (asyncio, lightkube); `leader` Lease leader election. `permissions` is the operator's RBAC table.
"""
