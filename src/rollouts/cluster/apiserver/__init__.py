"""The local cluster's Kubernetes API server: Kubernetes REST over the SQLite object store.

`resources` is the table of served kinds, `app` the aiohttp application (discovery, CRUD, list, watch,
patch, delete, subresources, tables), `kubeconfig` the token and kubeconfig file, `server` running it
in the foreground or as a background process of a rollouts home.
"""
