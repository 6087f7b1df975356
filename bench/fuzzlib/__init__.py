"""Input generators of the fuzz bench (`bench/fuzz.py`), as hypothesis strategies.

- `expressions`: condition-language sources built from its grammar (src/rollouts/analysis/expr/expr.lark),
  random unicode and bytes, and the values a metric provider can hand over as `result`;
- `manifests`: manifests built from scratch and hostile pieces (wrong types, huge numbers, unicode,
  duplicate keys) that `bench/fuzz.py` mixes with its mutations of Argo's examples;
- `requests`: raw HTTP requests to the API server (method, path, content type, body);
- `wedge`: after a run, every stored object through the operator's parse and reconcile path.
"""
