"""Who a worker is: the name a listener or webhook process goes by in leases and embedq.workers."""

from __future__ import annotations

import os
import socket
import uuid


def worker_name() -> str:
    """host:pid:random, unique across restarts (a pid is reused, the suffix is not)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
