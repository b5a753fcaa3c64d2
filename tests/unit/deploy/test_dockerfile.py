"""The Dockerfile, read with the official BuildKit parser (the `dockerfile` package): compilers
only in the build stage, an unprivileged runtime with a HEALTHCHECK that really probes
/readyz, and a .dockerignore that keeps everything but the sources out of the context.
(No Docker engine here: the image is not built.)"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dockerfile
import pytest

from tests.unit.deploy.support import DEPLOY

ROOT = DEPLOY.parent
BUILD_TOOLS = ("build-essential", "cmake", "gcc", "g++", "make ")


def _stages() -> dict[str, list[dockerfile.Command]]:
    stages: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] = []
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd == "FROM":
            current = stages.setdefault(command.value[-1], [])
        current.append(command)
    return stages


def _only(stage: list[dockerfile.Command], cmd: str) -> dockerfile.Command:
    [found] = [c for c in stage if c.cmd == cmd]
    return found


def test_build_tools_stay_in_the_build_stage() -> None:
    stages = _stages()
    assert list(stages)[-1] == "runtime", "a build without --target must give the service image"
    build_runs = " ".join(c.value[0] for c in stages["build"] if c.cmd == "RUN")
    assert [tool for tool in BUILD_TOOLS if tool in build_runs]
    for name, stage in stages.items():
        if name != "build":
            runs = " ".join(c.value[0] for c in stage if c.cmd == "RUN")
            assert not [tool for tool in BUILD_TOOLS if tool in runs], name
    copies = [c for c in stages["runtime"] if c.cmd == "COPY"]
    assert copies and all(c.flags in (("--from=build",), ("--from=web",)) for c in copies)


def test_images_run_unprivileged() -> None:
    for name in ("runtime", "tools"):
        user = _only(_stages()[name], "USER").value[0]
        assert user.split(":")[0] not in ("0", "root"), name


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ready_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("service", ["gateway", "context", "memory_indexer"])
def test_the_healthcheck_probes_the_services_readiness(
        ready_server: ThreadingHTTPServer, service: str) -> None:
    healthcheck = _only(_stages()["runtime"], "HEALTHCHECK")
    assert healthcheck.value[0] == "CMD"
    port = str(ready_server.server_address[1])
    variable = "GATEWAY_PORT" if service == "gateway" else f"{service.upper()}_HTTP_PORT"
    env = {"PATH": os.environ["PATH"], "SERVICE": service, variable: port}

    def probe() -> int:
        return subprocess.run(["sh", "-c", healthcheck.value[1]], env=env, timeout=10,
                              capture_output=True).returncode

    _Ready.status = 200
    assert probe() == 0
    _Ready.status = 503
    assert probe() != 0


def test_dockerignore_keeps_the_context_to_the_sources() -> None:
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "**", "everything is excluded first, then the sources allowed back"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {source.split("/${")[0].rstrip("/") for stage in _stages().values()
              for c in stage if c.cmd == "COPY" and not c.flags for source in c.value[:-1]}
    assert copied and all(any(path == a or path.startswith(a + "/") for a in allowed)
                          for path in copied), (copied, allowed)
    # What is built here (dependencies, bundles) must not shadow what the image builds.
    assert {"web/node_modules/", "web/dist/"} <= set(lines)


def test_the_images_install_what_dev_installs_outside_the_pyprojects() -> None:
    # ./dev pins a few packages by hand (built from source, or data without their plugin's
    # dependencies); an image without them would start without its model.
    pins = set(re.findall(r'pip install [^\n]*?"([\w.-]+==[\w.]+)"', (ROOT / "dev").read_text()))
    build = " ".join(c.value[0] for c in _stages()["build"] if c.cmd == "RUN")
    assert pins and {pin for pin in pins if pin not in build} == set()
