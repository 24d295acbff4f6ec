"""Which worker process holds the server end of a test's TCP connection (Linux /proc).

With several workers sharing a port the kernel picks a worker per connection; a test that must
reach both (a viewer on one, the writer on the other) asks which one it got instead of hoping.
"""

from __future__ import annotations

import os
from pathlib import Path


def _server_socket_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server's end of the loopback connection client_port -> server_port."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], int(parts[9])
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                return inode
    return None


def worker_of(pids: list[int], server_port: int, client_port: int) -> int | None:
    """Which of `pids` holds the server end of the connection from `client_port`, if any."""
    inode = _server_socket_inode(server_port, client_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None
