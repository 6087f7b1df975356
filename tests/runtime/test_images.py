"""Image resolution for the local runtime: container command, image map (exact vs glob), demo images."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from rollouts.runtime.local.images import (
    ImageMap,
    ImageMapError,
    ImageNotResolvable,
    ImageResolver,
    expand_env_refs,
    resolve_container,
    split_image,
)
from rollouts.spec.pod import Container

DEMO = (sys.executable, "-m", "rollouts.demo.service")

MAP = ImageMap.from_data(
    {
        "auth-svc:*": {"command": ["auth-glob"], "args": ["--tag", "{tag}"], "env": {"IMG": "{image}"}},
        "auth-svc:1.2": {"command": ["auth-exact"], "args": ["--serve"]},
        "auth-*": {"command": ["auth-any"]},
        "rollouts-demo:purple": {"command": ["my-purple"], "env": {"RATE": 0.5}},
        "py:*": {"command": ["{python}", "-m", "app"], "args": ['{"json": {tag}}']},
    }
)


def container(**fields: Any) -> Container:
    return Container.model_validate({"name": "app", **fields})


RESOLUTION = [
    # (container fields, expected argv, expected env subset)
    ({"image": "auth-svc:1.2", "command": ["/bin/own"], "args": ["-x"]}, ("/bin/own", "-x"), {}),
    ({"image": "nowhere:1", "command": ["/bin/own"]}, ("/bin/own",), {}),
    ({"image": "auth-svc:1.2"}, ("auth-exact", "--serve"), {}),
    ({"image": "auth-svc:1.3"}, ("auth-glob", "--tag", "1.3"), {"IMG": "auth-svc:1.3"}),
    ({"image": "auth-worker:9"}, ("auth-any",), {}),
    ({"image": "auth-svc:1.3", "args": ["--only"]}, ("auth-glob", "--only"), {"IMG": "auth-svc:1.3"}),
    ({"image": "py:7"}, (sys.executable, "-m", "app", '{"json": 7}'), {}),
    ({"image": "rollouts-demo:purple"}, ("my-purple",), {"RATE": "0.5"}),
    ({"image": "rollouts-demo:blue"}, DEMO, {"COLOR": "blue", "VERSION": "blue"}),
    ({"image": "argoproj/rollouts-demo:yellow"}, DEMO, {"COLOR": "yellow"}),
    ({"image": "rollouts-demo:bad-red"}, DEMO, {"COLOR": "red", "ERROR_RATE": "0.2", "VERSION": "bad-red"}),
    ({"image": "rollouts-demo:slow-green"}, DEMO, {"COLOR": "green", "LATENCY_MS": "1000"}),
    (
        {"image": "rollouts-demo:bad-red", "env": [{"name": "ERROR_RATE", "value": "0.5"}]},
        DEMO,
        {"COLOR": "red", "ERROR_RATE": "0.5"},
    ),
    (
        {"image": "rollouts-demo:blue", "env": [{"name": "COLOR", "value": "orange"}]},
        DEMO,
        {"COLOR": "orange"},
    ),
]


@pytest.mark.parametrize(
    ("fields", "argv", "env"),
    RESOLUTION,
    ids=[
        "command-wins-over-map",
        "command-without-known-image",
        "map-exact-wins-over-earlier-glob",
        "map-glob-with-placeholders",
        "map-later-glob",
        "container-args-replace-map-args",
        "python-placeholder-and-braces-kept",
        "map-overrides-demo-image",
        "demo-image",
        "argoproj-demo-image",
        "demo-bad",
        "demo-slow",
        "container-env-overrides-demo-env",
        "container-env-overrides-color",
    ],
)
def test_resolution_table(fields: dict[str, Any], argv: tuple[str, ...], env: dict[str, str]) -> None:
    resolved = resolve_container(container(**fields), MAP)
    assert resolved.argv == argv
    assert {k: resolved.env.get(k) for k in env} == env


def test_demo_defaults_have_no_fault_injection() -> None:
    resolved = resolve_container(container(image="rollouts-demo:blue"))
    assert "ERROR_RATE" not in resolved.env and "LATENCY_MS" not in resolved.env
    assert resolved.source == "demo"


@pytest.mark.parametrize(
    "image", ["auth-svc:1.2", "registry.local/team/thing:3", ""], ids=["glob-miss", "x", "none"]
)
def test_unknown_image_says_how_to_map_it(image: str) -> None:
    fields = {"image": image} if image else {}
    with pytest.raises(ImageNotResolvable) as err:
        resolve_container(container(**fields), ImageMap())
    message = str(err.value)
    assert "images.yaml" in message
    assert 'container "app"' in message
    if image == "registry.local/team/thing:3":
        assert '"registry.local/team/thing:*": {command:' in message


def test_env_refs_are_expanded_in_argv_without_a_shell() -> None:
    c = container(command=["serve", "--port=$(PORT)", "$(MISSING)", "$$(PORT)", "a; rm -rf /"])
    resolved = resolve_container(c, extra_env={"PORT": "8123"})
    assert resolved.argv == ("serve", "--port=8123", "$(MISSING)", "$(PORT)", "a; rm -rf /")
    assert resolved.env["PORT"] == "8123"
    assert expand_env_refs("$(A)$(B)", {"A": "1"}) == "1$(B)"


def test_runtime_env_cannot_be_overridden_by_container() -> None:
    c = container(image="rollouts-demo:blue", env=[{"name": "PORT", "value": "1"}])
    assert resolve_container(c, extra_env={"PORT": "9000"}).env["PORT"] == "9000"


def test_value_from_is_skipped() -> None:
    c = container(
        image="rollouts-demo:blue",
        env=[{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}, {"name": "A"}],
    )
    env = resolve_container(c).env
    assert "SECRET" not in env and env["A"] == ""


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("app", ("app", "latest")),
        ("app:1.2", ("app", "1.2")),
        ("registry:5000/team/app", ("registry:5000/team/app", "latest")),
        ("registry:5000/team/app:v3@sha256:abc", ("registry:5000/team/app", "v3")),
    ],
    ids=["bare", "tag", "registry-port-no-tag", "digest"],
)
def test_split_image(image: str, expected: tuple[str, str]) -> None:
    assert split_image(image) == expected


def test_map_file_wrapped_in_images_key_and_relative_working_dir(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text('images:\n  "svc:*": {command: [run], workingDir: app}\n', encoding="utf-8")
    resolved = resolve_container(container(image="svc:1"), ImageMap.load(path))
    assert resolved.argv == ("run",)
    assert resolved.working_dir == str(tmp_path / "app")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('"svc:*": {args: [x]}\n', 'images["svc:*"]: command'),
        ('"svc:*": {command: [], env: {}}\n', 'images["svc:*"]: command'),
        ('"svc:*": {command: [x], bogus: 1}\n', "bogus"),
        ("- just a list\n", "mapping of image patterns"),
        ("key: [unclosed\n", "cannot read image map"),
    ],
    ids=["no-command", "empty-command", "unknown-field", "not-a-mapping", "bad-yaml"],
)
def test_invalid_map_files_are_named(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImageMapError) as err:
        ImageMap.load(path)
    assert fragment in str(err.value)
    assert str(path) in str(err.value)


def test_default_map_comes_from_rollouts_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUTS_HOME", str(tmp_path))
    assert ImageMap.load().entries == ()  # absent default file is an empty map
    with pytest.raises(ImageMapError):
        ImageMap.load(tmp_path / "missing.yaml")  # an explicit path must exist
    resolver = ImageResolver()
    assert resolver.path == tmp_path / "images.yaml"
    with pytest.raises(ImageNotResolvable):
        resolver.resolve(container(image="svc:1"))
    (tmp_path / "images.yaml").write_text('"svc:*": {command: [first]}\n', encoding="utf-8")
    assert resolver.resolve(container(image="svc:1")).argv == ("first",)
    # Edits are picked up (modification time or size changes).
    (tmp_path / "images.yaml").write_text('"svc:*": {command: [second, longer]}\n', encoding="utf-8")
    assert resolver.resolve(container(image="svc:1")).argv == ("second", "longer")
