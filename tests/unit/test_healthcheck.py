"""The container's health check (python -m embedq.healthcheck): what healthy means for the command
the container runs, found in a /proc laid out as in a container, probed over real HTTP."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from embedq.healthcheck import Probe, check, embedq_arguments, probe_for, running_command


@pytest.mark.parametrize(
    ("cmdline", "arguments"),
    [
        (["/opt/venv/bin/python", "/opt/venv/bin/embedq", "listen"], ["listen"]),
        (["/sbin/docker-init", "--", "embedq", "serve", "--port", "9000"], ["serve", "--port", "9000"]),
        (["python", "-m", "embedq", "up"], ["up"]),
        (["python", "-m", "embedq.healthcheck"], None),
        (["postgres", "-D", "/var/lib/postgresql/data"], None),
    ],
)
def test_the_embedq_arguments_of_a_command_line(cmdline, arguments):
    assert embedq_arguments(cmdline) == arguments


@pytest.mark.parametrize(
    ("arguments", "env", "probe"),
    [
        (["serve", "--host", "0.0.0.0", "--port", "8000"], {}, Probe("serve", "http://127.0.0.1:8000/healthz")),
        (["serve"], {"EMBEDQ_PORT": "9001"}, Probe("serve", "http://127.0.0.1:9001/healthz")),
        (["up", "--port=7000"], {"EMBEDQ_PORT": "9001"}, Probe("up", "http://127.0.0.1:7000/healthz")),
        (["up"], {}, Probe("up", "http://127.0.0.1:8000/healthz")),
        (["serve", "--host", "10.0.0.5"], {}, Probe("serve", "http://10.0.0.5:8000/healthz")),
        (["serve", "--host", "::"], {}, Probe("serve", "http://[::1]:8000/healthz")),
        (["listen"], {"EMBEDQ_PORT": "8000"}, Probe("listen")),
        (["listen", "--drain"], {}, Probe("listen")),
        (["migrate"], {}, Probe("migrate")),
    ],
)
def test_what_healthy_means_for_each_command(arguments, env, probe):
    assert probe_for(arguments, env) == probe


def fake_proc(root: Path, processes: dict[int, list[str]]) -> Path:
    for pid, cmdline in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(part.encode() for part in cmdline) + b"\0")
    (root / "self").mkdir()
    return root


@pytest.fixture
def healthz() -> Iterator[tuple[int, dict[str, int]]]:
    """A real HTTP server whose /healthz answers with the status the test sets."""
    answer = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answer["status"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], answer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_webhook_container_is_healthy_while_healthz_answers_200(tmp_path, healthz):
    port, answer = healthz
    proc = fake_proc(tmp_path, {1: ["/sbin/docker-init", "--", "embedq", "serve", "--port", str(port)], 7: ["sh"]})
    assert check(proc, env={})[0] is True
    answer["status"] = 503  # the database is away
    healthy, reason = check(proc, env={})
    assert healthy is False and reason.endswith("did not answer 200")


def test_a_webhook_that_is_not_listening_is_unhealthy(tmp_path, healthz):
    port, _ = healthz
    proc = fake_proc(tmp_path, {1: ["embedq", "up", "--port", str(port + 1 if port < 65535 else port - 1)]})
    assert check(proc, env={})[0] is False


def test_a_listener_container_is_healthy_while_the_listener_runs(tmp_path):
    proc = fake_proc(tmp_path, {1: ["/opt/venv/bin/python", "/opt/venv/bin/embedq", "listen"]})
    assert check(proc, env={"EMBEDQ_PORT": "8000"}) == (True, "embedq listen is running")
    assert check(fake_proc(tmp_path / "exited", {1: ["sh"]}), env={})[0] is False


def test_the_oldest_embedq_process_is_the_containers_command(tmp_path):
    proc = fake_proc(
        tmp_path,
        {
            30: ["python", "-m", "embedq.healthcheck"],
            12: ["/opt/venv/bin/embedq", "status"],  # `docker compose exec ... embedq status`
            5: ["/opt/venv/bin/embedq", "serve", "--port", "8000"],
        },
    )
    assert running_command(proc, own_pid=30) == ["serve", "--port", "8000"]
