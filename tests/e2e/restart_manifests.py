"""A canary release for the controller-restart tests: an indefinite pause (a promotion gate), an analysis
step that asks the canary Service's own port for its color (red is the known-bad build), and a timed
pause. Fixed Service ports make the analysis URL known before the controller runs."""

from __future__ import annotations

from rollouts.demo import releases

STEPS = 5


def canary(canary_port: int) -> str:
    template = releases.color_template("not-red", f"http://127.0.0.1:{canary_port}/color", {
        "interval": "1s", "count": 4, "failureLimit": 2, "successCondition": "result != 'red'"})
    shop = releases.shop_canary([{"setWeight": 30}, {"pause": {}}, {"analysis": releases.gate("not-red")},
                                 {"setWeight": 60}, {"pause": {"duration": "2s"}}])
    return releases.to_yaml(template, shop, *releases.shop_services(canary_port))
