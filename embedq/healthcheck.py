"""The container's health check, fitted to the command the container runs:

    HEALTHCHECK CMD ["python", "-m", "embedq.healthcheck"]

- `embedq serve` / `embedq up`: GET /healthz answers 200 on the address it serves (`--port`,
  else EMBEDQ_PORT, else 8000); /healthz checks the database.
- `embedq listen` and the other commands: the process runs. A listener serves no HTTP, and it
  exits (so the container restarts) when it cannot work: it is never "unhealthy" for lacking
  a web server.
- no embedq process: unhealthy.

The command is read from /proc (the container's PID namespace). Standard library only: it runs
every few seconds and must not load the package's dependencies.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8000
HTTP_COMMANDS = ("serve", "up")
TIMEOUT_SECONDS = 4.0
#: addresses that mean "every interface": probed on the loopback
WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True)
class Probe:
    """What healthy means for one command: `url` answers 200, or (url None) the process runs."""

    command: str
    url: str | None = None


def embedq_arguments(cmdline: Sequence[str]) -> list[str] | None:
    """The arguments given to embedq in a process's command line (`embedq serve ...`,
    `python -m embedq serve ...`, `docker-init -- embedq ...`), or None if it is not embedq."""
    for i, part in enumerate(cmdline):
        if os.path.basename(part) == "embedq":
            return list(cmdline[i + 1 :])
    return None


def probe_for(arguments: Sequence[str], env: Mapping[str, str]) -> Probe:
    command = next((a for a in arguments if not a.startswith("-")), "")
    if command not in HTTP_COMMANDS:
        return Probe(command)
    host = _option(arguments, "--host") or env.get("EMBEDQ_HOST") or "127.0.0.1"
    port = _option(arguments, "--port") or env.get("EMBEDQ_PORT") or str(DEFAULT_PORT)
    host = WILDCARD_HOSTS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return Probe(command, f"http://{host}:{port}/healthz")


def _option(arguments: Sequence[str], name: str) -> str | None:
    for i, part in enumerate(arguments):
        if part == name and i + 1 < len(arguments):
            return arguments[i + 1]
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    return None


def running_command(proc: Path = Path("/proc"), own_pid: int | None = None) -> list[str] | None:
    """The arguments of the oldest embedq process (the container's main one)."""
    own_pid = os.getpid() if own_pid is None else own_pid
    pids = sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit() and int(p.name) != own_pid)
    for pid in pids:
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:  # it exited meanwhile, or is not ours to read
            continue
        arguments = embedq_arguments([part.decode(errors="replace") for part in raw.split(b"\0") if part])
        if arguments is not None:
            return arguments
    return None


def answers(url: str, timeout: float = TIMEOUT_SECONDS) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def check(proc: Path = Path("/proc"), env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    arguments = running_command(proc)
    if arguments is None:
        return False, "no embedq process is running"
    probe = probe_for(arguments, os.environ if env is None else env)
    if probe.url is None:
        return True, f"embedq {probe.command or '(no command)'} is running"
    if answers(probe.url):
        return True, f"embedq {probe.command}: {probe.url} answered 200"
    return False, f"embedq {probe.command}: {probe.url} did not answer 200"


def main() -> int:
    healthy, reason = check()
    sys.stdout.write(reason + "\n")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
