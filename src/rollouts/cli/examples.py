"""The Examples section of every command's --help, kubectl's way: a comment line, then the command.

Kept in one table so that a command added anywhere gets its examples here, and a test checks that no
command is left without them."""

from __future__ import annotations

EXAMPLES: dict[tuple[str, ...], list[tuple[str, str]]] = {
    (): [
        ("Start the controller, then apply the manifests of a service", "rollouts controller &"),
        ("", "rollouts apply -f infra/rollouts/"),
        ("Watch a release and promote it past a pause", "rollouts get rollout shop --watch"),
        ("", "rollouts promote shop"),
    ],
    ("abort",): [
        ("Abort a release: traffic and replicas go back to the stable version", "rollouts abort shop"),
        ("Abort every rollout of the namespace (mass rollback)", "rollouts abort --all"),
    ],
    ("analyze",): [
        ("Run a template once against the stable version", "rollouts analyze -f templates/success-rate.yaml "
                                                           "-a service-name=shop --once"),
        ("Query another Prometheus, one JSON object per measurement",
         "rollouts analyze -f t.yaml --prometheus-address http://127.0.0.1:9090 -o json"),
        ("Measure one template of a file of several", "rollouts analyze -f infra/rollouts/analysis-templates.yaml "
                                                      "--template success-rate -a service-name=auth-svc --once"),
    ],
    ("apply",): [
        ("Create or update every manifest of a folder", "rollouts apply -f infra/rollouts/"),
        ("Read manifests from stdin", "cat shop.yaml | rollouts apply -f -"),
    ],
    ("cluster",): [
        ("Start the local cluster's API server and save its kubeconfig for kubectl", "rollouts cluster up"),
        ("", "rollouts cluster kubeconfig > ~/.kube/rollouts-local.yaml"),
    ],
    ("cluster", "up"): [
        ("Start the local cluster's API server in the background", "rollouts cluster up"),
        ("Serve it in this process until Ctrl-C", "rollouts cluster up --foreground"),
    ],
    ("cluster", "down"): [("Stop the local cluster's API server", "rollouts cluster down")],
    ("cluster", "status"): [("Is the local cluster's API server running?", "rollouts cluster status")],
    ("cluster", "kubeconfig"): [
        ("Print the kubeconfig of the local cluster", "rollouts cluster kubeconfig"),
        ("Save it for kubectl", "rollouts cluster kubeconfig > ~/.kube/rollouts-local.yaml"),
    ],
    ("controller",): [
        ("Run the controller with its dashboard", "rollouts controller --dashboard-address 127.0.0.1:3100"),
        ("Query a Prometheus of your own", "rollouts controller --prometheus-address http://127.0.0.1:9090"),
    ],
    ("create",): [
        ("Create objects (fails if one exists)", "rollouts create -f shop-rollout.yaml"),
        ("Start an analysis run from a template", "rollouts create analysisrun --from success-rate "
                                                  "-a service-name=shop"),
    ],
    ("dashboard",): [
        ("Serve the dashboard on the default port", "rollouts dashboard"),
        ("Print the token the dashboard's actions need", "rollouts dashboard --show-token"),
        ("Serve it and open it in a browser, the token passed along", "rollouts dashboard --open"),
    ],
    ("delete",): [
        ("Delete a rollout and what it owns", "rollouts delete rollout shop"),
        ("Delete an analysis template", "rollouts delete analysistemplate/success-rate"),
    ],
    ("demo",): [
        ("Run the canary demo in a temporary home", "rollouts demo"),
        ("Gate it with PromQL through a real Prometheus", "rollouts demo --prometheus"),
    ],
    ("describe",): [
        ("Show a rollout in detail, with its events", "rollouts describe rollout shop"),
        ("Show an analysis run's measurements", "rollouts describe analysisrun shop-6f9c7d8b4-3"),
    ],
    ("doctor",): [
        ("Check the controller of this home, the templates and every rollout's gates", "rollouts doctor"),
        ("Check one rollout's gates", "rollouts doctor shop"),
    ],
    ("eval",): [
        ("Evaluate a success condition against a result", "rollouts eval 'result[0] >= 0.995' -r '[0.998]'"),
    ],
    ("gate",): [
        ("How often would each gate roll back a healthy release?",
         "rollouts gate check -f infra/rollouts/analysis-templates.yaml -a service-name=shop --gates 4"),
    ],
    ("gate", "check"): [
        ("Judge the runbook's success-rate gate on the last 7 days of traffic",
         "rollouts gate check -f infra/rollouts/analysis-templates.yaml --template success-rate "
         "-a service-name=shop --prometheus-address http://127.0.0.1:9090 --gates 4"),
        ("Without Prometheus: give the baseline by hand",
         "rollouts gate check -f t.yaml -a service-name=shop --error-rate 0.005 --rps 100"),
    ],
    ("get",): [
        ("Draw a rollout's tree, and keep it up to date", "rollouts get rollout shop --watch"),
        ("List pods with their local ports", "rollouts get pods -o wide"),
        ("Events of one object, oldest first", "rollouts get events --field-selector involvedObject.name=shop"),
        ("Events by creation time", "rollouts get events --sort-by=.metadata.creationTimestamp"),
    ],
    ("history",): [
        ("Show a rollout's releases, oldest first", "rollouts history shop"),
        ("The same as JSON, in the same order", "rollouts history shop -o json"),
    ],
    ("lint",): [
        ("Check every manifest of a folder", "rollouts lint -f infra/rollouts/"),
        ("Check several files", "rollouts lint -f shop-rollout.yaml templates.yaml"),
    ],
    ("list",): [
        ("List the rollouts of every namespace", "rollouts list rollouts -A"),
        ("Watch them, with a timestamp on each line", "rollouts list rollouts --watch --timestamps"),
    ],
    ("logs",): [
        ("Follow the canary pods' output", "rollouts logs rollout/shop --canary -f"),
        ("The ingress proxy's access log", "rollouts logs ingress --tail 20"),
    ],
    ("patch",): [
        ("Bypass the canary steps", "rollouts patch rollout shop -p '{\"spec\":{\"strategy\":{\"canary\":"
                                    "{\"steps\":[{\"setWeight\":100}]}}}}'"),
        ("A JSON patch", "rollouts patch rollout shop --type json "
                         "-p '[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3}]'"),
    ],
    ("pause",): [("Stop a release where it is (the emergency brake)", "rollouts pause shop")],
    ("port-forward",): [
        ("Reach the stable service on local port 8080", "rollouts port-forward service/shop-stable 8080:80"),
    ],
    ("promote",): [
        ("Promote a paused rollout", "rollouts promote shop"),
        ("Fully promote, skipping analysis, pauses and steps", "rollouts promote shop --full"),
    ],
    ("report",): [
        ("Release metrics of the last two weeks in every namespace", "rollouts report --since 2w -A"),
    ],
    ("restart",): [("Restart the pods of a rollout in 30 seconds", "rollouts restart shop --in 30s")],
    ("resume",): [("Resume a paused rollout without skipping its step", "rollouts resume shop")],
    ("retry",): [("Retry an aborted rollout", "rollouts retry rollout shop")],
    ("retry", "rollout"): [("Retry an aborted rollout from its first step", "rollouts retry rollout shop")],
    ("scale",): [("Run three replicas", "rollouts scale rollout shop --replicas 3")],
    ("set",): [("Start a release of a new image", "rollouts set image shop shop=ghcr.io/acme/shop:1.4")],
    ("set", "image"): [
        ("Start a release of a new image", "rollouts set image shop shop=ghcr.io/acme/shop:1.4"),
        ("Set the image of every container", "rollouts set image shop '*=ghcr.io/acme/shop:1.4'"),
    ],
    ("simulate",): [
        ("Replay a release in virtual time", "rollouts simulate -f shop-rollout.yaml --scenario scenario.yaml"),
    ],
    ("status",): [
        ("Wait until a rollout is Healthy (exit 0) or Degraded (exit 1)", "rollouts status shop --timeout 10m"),
        ("Print the status once", "rollouts status shop --watch=false"),
    ],
    ("terminate",): [("Stop a running analysis run", "rollouts terminate analysisrun shop-6f9c7d8b4-3")],
    ("terminate", "analysisrun"): [
        ("Stop a running analysis run", "rollouts terminate analysisrun shop-6f9c7d8b4-3"),
    ],
    ("undo",): [
        ("Roll back to the previous revision", "rollouts undo shop"),
        ("Roll back to revision 3", "rollouts undo shop --to-revision 3"),
    ],
    ("load",): [
        ("Send 20 requests/s through a rollout's Ingress for 5 minutes", "rollouts load auth-svc -n aivo-system"),
        ("Only to the canary, by the header its Ingress routes on",
         "rollouts load auth-svc -n aivo-system --header 'X-Canary: true'"),
        ("Exercise a blue/green preview until Ctrl-C",
         "rollouts load analytics-svc -n aivo-system --preview --duration 0"),
    ],
    ("version",): [("Print only the version number", "rollouts version --short")],
}


def examples_for(path: tuple[str, ...]) -> str | None:
    """The Examples section of the command at `path` (click's `\\b` keeps its lines as written)."""
    items = EXAMPLES.get(path)
    if not items:
        return None
    lines = ["\b", "Examples:"]
    for comment, command in items:
        if comment:
            lines.append(f"  # {comment}")
        lines.append(f"  {command}")
    return "\n".join(lines)
