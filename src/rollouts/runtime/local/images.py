"""How the local runtime turns a container's image into a program to run: an argv and an environment.

Resolution order for a container:

1. the container's own `command` (plus its `args`): the image is not consulted;
2. the image map file (YAML, default `$ROLLOUTS_HOME/images.yaml`), whose keys are image names or
   fnmatch globs (`auth-svc:*`); an exact name wins over globs, otherwise the first matching glob in
   file order. Each entry is `{command: [...], args: [...], env: {...}, workingDir: ...}`;
3. the built-in demo images `rollouts-demo:<color>` (also `argoproj/rollouts-demo:<color>`), which run
   `python -m rollouts.demo.service`; a `bad-` tag prefix injects 20 % errors, `slow-` adds 1 s latency.

As in Kubernetes, `args` without `command` replace the image's default args but keep its command.
Map entries may use `{image}`, `{tag}` and `{python}` placeholders inside list items and env values;
they are replaced textually, item by item. Container command/args may reference `$(VAR)` env names the
Kubernetes way. No string is ever passed through a shell.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rollouts.spec.pod import Container

DEMO_REPOSITORIES = ("rollouts-demo", "argoproj/rollouts-demo", "docker.io/argoproj/rollouts-demo")
DEMO_ERROR_RATE = "0.2"
DEMO_LATENCY_MS = "1000"


# An image map may declare itself (`apiVersion: rollouts.io/v1alpha1, kind: ImageMap`) so that it can live in
# a manifest folder: lint and apply recognise the kind and leave the document out.
LOCAL_CONFIG_KIND = "ImageMap"


class ImageNotResolvable(LookupError):
    """A container whose image the local runtime does not know how to run."""


class ImageMapError(ValueError):
    """An image map file that cannot be read or has an invalid entry."""


def rollouts_home() -> Path:
    """The local state directory: `$ROLLOUTS_HOME`, else `~/.rollouts`."""
    env = os.environ.get("ROLLOUTS_HOME")
    return Path(env) if env else Path.home() / ".rollouts"


def default_image_map_path() -> Path:
    return rollouts_home() / "images.yaml"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    working_dir: str | None = Field(default=None, alias="workingDir")

    @field_validator("env", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # YAML turns `ERROR_RATE: 0.2` into a float; env values are strings.
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


@dataclass(frozen=True)
class ImageMapEntry:
    """One image map entry: the program an image (or glob of images) stands for."""

    pattern: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None


@dataclass(frozen=True)
class ImageMap:
    """The parsed image map, in file order."""

    entries: tuple[ImageMapEntry, ...] = ()
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | str | None = None) -> ImageMap:
        """Read a map file. The default path may be absent (empty map); a path given explicitly must exist."""
        explicit = path is not None
        file = Path(path) if path is not None else default_image_map_path()
        if not file.exists():
            if explicit:
                raise ImageMapError(f"{file}: image map file does not exist")
            return cls(path=file)
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ImageMapError(f"{file}: cannot read image map: {exc}") from exc
        return cls.from_data(data, path=file)

    @classmethod
    def from_data(cls, data: Any, *, path: Path | None = None) -> ImageMap:
        """Build a map from `{pattern: entry}` (optionally nested under a top-level `images:` key)."""
        where = str(path) if path is not None else "image map"
        if data is None:
            return cls(path=path)
        wrapped = isinstance(data, dict) and (data.get("kind") == LOCAL_CONFIG_KIND or set(data) == {"images"})
        if wrapped and isinstance(data.get("images"), dict):
            data = data["images"]
        if not isinstance(data, dict):
            raise ImageMapError(f"{where}: expected a mapping of image patterns to entries")
        entries: list[ImageMapEntry] = []
        base = path.parent if path is not None else None
        for pattern, raw in data.items():
            try:
                parsed = _Entry.model_validate(raw)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or '(entry)'}: {err['msg']}"
                    for err in exc.errors()
                )
                raise ImageMapError(
                    f'{where}: images["{pattern}"]: {problems} '
                    "(expected {command: [...], args: [...], env: {...}})"
                ) from exc
            working_dir = parsed.working_dir
            if working_dir is not None and base is not None and not Path(working_dir).is_absolute():
                working_dir = str(base / working_dir)
            entries.append(
                ImageMapEntry(
                    pattern=str(pattern),
                    command=tuple(parsed.command),
                    args=tuple(parsed.args),
                    env=dict(parsed.env),
                    working_dir=working_dir,
                )
            )
        return cls(entries=tuple(entries), path=path)

    def lookup(self, image: str) -> ImageMapEntry | None:
        """The entry for an image: an exact key first, else the first glob that matches."""
        for entry in self.entries:
            if entry.pattern == image:
                return entry
        for entry in self.entries:
            if fnmatch.fnmatchcase(image, entry.pattern):
                return entry
        return None


class ImageResolver:
    """Resolves containers against an image map file, re-reading the file when it changes on disk."""

    def __init__(self, path: Path | str | None = None, *, image_map: ImageMap | None = None) -> None:
        self._explicit = path is not None
        self._path = Path(path) if path is not None else default_image_map_path()
        self._fixed = image_map
        self._cached: ImageMap | None = None
        self._stamp: tuple[int, int] | None = None

    @property
    def path(self) -> Path:
        return self._path

    def image_map(self) -> ImageMap:
        if self._fixed is not None:
            return self._fixed
        try:
            info = self._path.stat()
            stamp: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        if self._cached is None or stamp != self._stamp:
            self._cached = (
                ImageMap.load(self._path)
                if stamp is not None or self._explicit
                else ImageMap(path=self._path)
            )
            self._stamp = stamp
        return self._cached

    def resolve(self, container: Container, extra_env: Mapping[str, str] | None = None) -> ResolvedCommand:
        return resolve_container(container, self.image_map(), extra_env=extra_env)


@dataclass(frozen=True)
class ResolvedCommand:
    """What to execute for a container: argv (never a shell string), env additions and working directory."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    working_dir: str | None = None
    source: str = "command"  # "command", "image-map:<pattern>" or "demo"


def split_image(image: str) -> tuple[str, str]:
    """`registry:5000/team/app:1.2@sha256:..` -> (`registry:5000/team/app`, `1.2`); no tag is `latest`."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, "latest"


def _demo(image: str) -> tuple[tuple[str, ...], dict[str, str]] | None:
    repository, tag = split_image(image)
    if repository not in DEMO_REPOSITORIES:
        return None
    env: dict[str, str] = {"VERSION": tag}
    color = tag
    if color.startswith("bad-"):
        color = color[len("bad-") :]
        env["ERROR_RATE"] = DEMO_ERROR_RATE
    elif color.startswith("slow-"):
        color = color[len("slow-") :]
        env["LATENCY_MS"] = DEMO_LATENCY_MS
    env["COLOR"] = color
    return (sys.executable, "-m", "rollouts.demo.service"), env


def _placeholders(text: str, values: Mapping[str, str]) -> str:
    # Plain replacement rather than str.format: other braces (JSON in args) must pass through untouched.
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_env_refs(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command/args: unknown references stay as written, `$$` is `$`."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REF.sub(sub, text)


def container_env(container: Container) -> dict[str, str]:
    """The container's literal env values (`valueFrom` references have no local source)."""
    return {var.name: var.value or "" for var in container.env or [] if var.value_from is None}


def _hint(container: Container, image: str, map_path: Path | None) -> str:
    repository, _ = split_image(image)
    where = str(map_path) if map_path is not None else str(default_image_map_path())
    return (
        f'container "{container.name}": image "{image}" cannot be run locally. Map it in the image map '
        f"{where}, e.g. with this line:\n"
        f'  "{repository}:*": {{command: ["{{python}}", "-m", "my_service"], env: {{VERSION: "{{tag}}"}}}}\n'
        f"or give the container a `command`; built-in images are rollouts-demo:<color>."
    )


def resolve_container(
    container: Container,
    image_map: ImageMap | None = None,
    *,
    extra_env: Mapping[str, str] | None = None,
) -> ResolvedCommand:
    """The argv and env a container runs with locally.

    `env` holds the image's env overlaid by the container's env, then `extra_env` (runtime-provided values
    such as PORT, which the pod must not override).
    """
    image = container.image or ""
    image_env: dict[str, str] = {}
    working_dir: str | None = None
    if container.command:
        argv = [*container.command, *(container.args or [])]
        source = "command"
    else:
        entry = image_map.lookup(image) if image_map is not None and image else None
        if entry is not None:
            _, tag = split_image(image)
            values = {"image": image, "tag": tag, "python": sys.executable}
            command = [_placeholders(item, values) for item in entry.command]
            default_args = [_placeholders(item, values) for item in entry.args]
            image_env = {k: _placeholders(v, values) for k, v in entry.env.items()}
            working_dir = entry.working_dir
            source = f"image-map:{entry.pattern}"
        else:
            demo = _demo(image) if image else None
            if demo is None:
                raise ImageNotResolvable(
                    _hint(container, image or "<none>", image_map.path if image_map else None)
                )
            command, image_env = list(demo[0]), demo[1]
            default_args = []
            source = "demo"
        argv = [*command, *(container.args if container.args is not None else default_args)]
    env = {**image_env, **container_env(container), **(extra_env or {})}
    return ResolvedCommand(
        argv=tuple(expand_env_refs(item, env) for item in argv),
        env=env,
        working_dir=container.working_dir or working_dir,
        source=source,
    )
