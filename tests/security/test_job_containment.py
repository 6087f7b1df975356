"""What a `job` metric's manifest can make the local runtime do on the host: its command runs as an argument
list (shell syntax in args is just text), and it starts in its own working folder whatever workingDir,
volumes or `..` paths say; what would reach outside is refused with the field that asks for it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from rollouts.runtime.local.jobs import plan_job, run_job_locally

PY = sys.executable
REPORT = "import os, sys; print('cwd=' + os.getcwd()); print('args=' + repr(sys.argv[1:]))"


def job(container: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [{"name": "check", **container}]}
    if volumes is not None:
        pod["volumes"] = volumes
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "check", "uid": "u1"},
            "spec": {"backoffLimit": 0, "template": {"spec": pod}}}


def run(spec: dict[str, Any], folder: Path) -> tuple[dict[str, Any], str]:
    status = asyncio.run(run_job_locally(spec, folder, retry_delay=0.01))
    output = "".join(p.read_text() for p in sorted(folder.glob("*.log")))
    return status, output


def condition(status: dict[str, Any]) -> dict[str, Any]:
    [found] = status["conditions"]
    return dict(found)


@pytest.mark.parametrize("argument", [
    "; touch {x}", "&& touch {x}", "| touch {x}", "$(touch {x})", "`touch {x}`", "\n touch {x}",
    "'; touch {x}; '", "> {x}",
], ids=["semicolon", "and", "pipe", "dollar-paren", "backticks", "newline", "quotes", "redirect"])
def test_job_command_runs_as_argument_list(tmp_path: Path, argument: str) -> None:
    target = tmp_path / "x"
    text = argument.format(x=target)
    for command, args in (([PY, "-c", REPORT], [text]), (["echo"], [text]), (["echo", text], None)):
        spec = job({"command": command, **({"args": args} if args is not None else {})})
        status, output = run(spec, tmp_path / f"job-{len(command)}-{args is None}")
        assert condition(status)["type"] == "Complete", status
        assert text.strip() in output  # the argument arrived as one piece of text
    assert not target.exists()


@pytest.mark.parametrize(("working_dir", "inside"), [
    pytest.param(None, "", id="unset"),
    pytest.param("/etc", "etc", id="absolute-host-folder"),
    pytest.param("/", "", id="root"),
    pytest.param("data/run", "data/run", id="relative"),
    pytest.param("$(HOME)", "$(HOME)", id="env-reference-not-expanded"),
    pytest.param("./a/./b/", "a/b", id="dots"),
])
def test_job_working_dir_stays_inside_its_working_folder(tmp_path: Path, working_dir: str | None,
                                                         inside: str) -> None:
    container: dict[str, Any] = {"command": [PY, "-c", REPORT]}
    if working_dir is not None:
        container["workingDir"] = working_dir
    status, output = run(job(container), tmp_path / "job")
    assert condition(status)["type"] == "Complete", status
    cwd = next(line for line in output.splitlines() if line.startswith("cwd=")).removeprefix("cwd=")
    work = (tmp_path / "job" / "work").resolve()
    assert Path(cwd) == (work / inside if inside else work)


@pytest.mark.parametrize(("container", "volumes", "fragments"), [
    pytest.param({"workingDir": "../.."}, None, ["containers[0].workingDir", "'..'"], id="working-dir-dotdot"),
    pytest.param({"workingDir": "/work/../../etc"}, None, ["workingDir", "'..'"], id="working-dir-inner-dotdot"),
    pytest.param({"volumeMounts": [{"name": "host", "mountPath": "/host"}]},
                 [{"name": "host", "hostPath": {"path": "/"}}], ["volumes[0] (host)", "hostPath", "emptyDir"],
                 id="host-path-volume"),
    pytest.param({}, [{"name": "cfg", "configMap": {"name": "x"}}], ["volumes[0] (cfg)", "configMap"],
                 id="config-map-volume"),
    pytest.param({"volumeMounts": [{"name": "scratch", "mountPath": "../../out"}]},
                 [{"name": "scratch", "emptyDir": {}}], ["volumeMounts[0].mountPath", "'..'"], id="mount-dotdot"),
    pytest.param({"volumeMounts": [{"name": "scratch", "mountPath": "/out", "subPath": "../../x"}]},
                 [{"name": "scratch", "emptyDir": {}}], ["volumeMounts[0].subPath", "'..'"], id="sub-path-dotdot"),
    pytest.param({"volumeMounts": [{"name": "scratch", "mountPath": "/out", "subPathExpr": "$(HOME)"}]},
                 [{"name": "scratch", "emptyDir": {}}], ["subPathExpr"], id="sub-path-expr"),
    pytest.param({"volumeMounts": [{"name": "nope", "mountPath": "/out"}]}, [],
                 ["volumeMounts[0]", "'nope'"], id="mount-of-no-volume"),
    pytest.param({"volumeDevices": [{"name": "d", "devicePath": "/dev/sda"}]}, None, ["volumeDevices"],
                 id="volume-devices"),
])
def test_job_paths_that_would_escape_are_refused(tmp_path: Path, container: dict[str, Any],
                                                 volumes: list[dict[str, Any]] | None, fragments: list[str]) -> None:
    marker = tmp_path / "ran"
    spec = job({"command": [PY, "-c", f"open({str(marker)!r}, 'w')"], **container}, volumes)
    status, _ = run(spec, tmp_path / "job")
    found = condition(status)
    assert (found["type"], found["reason"]) == ("Failed", "InvalidJobSpec"), found
    for fragment in fragments:
        assert fragment in found["message"]
    assert not marker.exists()  # refused before anything ran


def test_job_empty_dir_mounts_are_folders_inside_the_working_folder(tmp_path: Path) -> None:
    spec = job({"command": [PY, "-c", "import os; open('/'.join(['cache', 'f']), 'w'); print('ok')"],
                "workingDir": "/app", "volumeMounts": [{"name": "c", "mountPath": "/app/cache"}]},
               [{"name": "c", "emptyDir": {}}])
    status, output = run(spec, tmp_path / "job")
    assert condition(status)["type"] == "Complete", status
    assert (tmp_path / "job" / "work" / "app" / "cache" / "f").exists()
    assert plan_job(spec["spec"], images=None).mounts == ("app/cache",)


def test_job_working_dir_symlink_left_by_an_attempt_is_refused(tmp_path: Path) -> None:
    """An earlier attempt turned work/app into a link to the host's /: the next one does not start there."""
    folder = tmp_path / "job"
    (folder / "work").mkdir(parents=True)
    (folder / "work" / "app").symlink_to("/")
    status, _ = run(job({"command": [PY, "-c", REPORT], "workingDir": "/app"}), folder)
    found = condition(status)
    assert (found["type"], found["reason"]) == ("Failed", "StartError"), found
    assert "outside the job's working folder" in found["message"]
