"""The blue/green release the end-to-end tests drive: active and preview Services on fixed ports, manual
promotion, and pre/post-promotion analysis that asks a Service's own port which color it serves."""

from __future__ import annotations

from rollouts.demo import releases
from rollouts.demo.prometheus import free_port

__all__ = ["blue_green", "free_port"]


def blue_green(active_port: int, preview_port: int, post_color: str) -> str:
    """`post_color` is what post-promotion analysis expects from the active Service after the switch."""
    # The switch is a Service write; the cluster moves its listener a moment later (as kube-proxy does), so
    # a measurement of the active Service waits a second, as post-promotion gates on a real cluster should.
    template = releases.color_template(
        "answers-color", "http://127.0.0.1:{{args.port}}/color",
        {"initialDelay": "1s", "interval": "1s", "count": 2, "successCondition": "result == '{{args.color}}'"},
        args=("port", "color"), json_path="{$}")
    bg = releases.bg_bluegreen(auto_promotion=False,
                               pre=releases.gate("answers-color", port=preview_port, color="yellow"),
                               post=releases.gate("answers-color", port=active_port, color=post_color))
    return releases.to_yaml(template, bg, *releases.bg_services(preview_port, active_port))
