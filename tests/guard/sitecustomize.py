"""Network guard for end-to-end tests: on PYTHONPATH, Python imports it at start-up.

Every attempt to resolve a host name or to connect or send over anything but a Unix socket is
appended to $RMPIPE_NET_LOG (one JSON line with the call, the address and the stack) and fails
with ConnectionRefusedError. Loopback is not allowed either: an offline pipeline run needs no
server. Python-level sockets only: native code that opens its own sockets bypasses this.
"""

from __future__ import annotations

import json
import os
import socket
import traceback
from typing import Any

_LOG = os.environ.get("RMPIPE_NET_LOG")


def _refuse(call: str, address: Any) -> None:
    entry = {"call": call, "address": repr(address), "pid": os.getpid()}
    entry["stack"] = "".join(traceback.format_stack(limit=12)[:-2])
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
    raise ConnectionRefusedError(f"network access blocked in this test: {call}({address!r})")


def _is_unix(sock: socket.SocketType) -> bool:
    return getattr(socket, "AF_UNIX", None) is not None and sock.family == socket.AF_UNIX


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_sendto = socket.socket.sendto


def _guarded_connect(self: socket.SocketType, address: Any) -> None:
    if not _is_unix(self):
        _refuse("socket.connect", address)
    return _connect(self, address)


def _guarded_connect_ex(self: socket.SocketType, address: Any) -> int:
    if not _is_unix(self):
        _refuse("socket.connect_ex", address)
    return _connect_ex(self, address)


def _guarded_sendto(self: socket.SocketType, *args: Any) -> int:
    if not _is_unix(self):
        _refuse("socket.sendto", args[-1])
    return _sendto(self, *args)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    _refuse("socket.getaddrinfo", host)


def _guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
    _refuse("socket.create_connection", address)


def _guarded_gethostbyname(host: Any) -> Any:
    _refuse("socket.gethostbyname", host)


if _LOG:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.create_connection = _guarded_create_connection
    socket.gethostbyname = _guarded_gethostbyname
