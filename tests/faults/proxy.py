"""A loopback TCP proxy whose faults a test switches on and off: latency, stalls, resets, cuts."""

from __future__ import annotations

import socket
import struct
import threading
import time
from contextlib import suppress

CHUNK = 65536
POLL = 0.05  # how often a blocked pipe re-checks the proxy's state (bounds every wait)


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST (SO_LINGER 0), as a crashed peer or middlebox would."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.close()


class Proxy:
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>``, one thread per direction.

    ``latency`` delays every chunk; :meth:`stall` holds all bytes (connections stay open, as
    with a dead network path); :meth:`reset` kills current connections; :meth:`cut` also
    refuses new ones until :meth:`heal`. It counts what it did, so a test can check that each
    fault really hit traffic: ``delayed`` and ``held`` chunks, ``resets`` of connections.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.latency = 0.0
        self._flowing = threading.Event()
        self._flowing.set()
        self._refusing = False
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._clients: set[socket.socket] = set()  # the client side of each open connection
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(POLL)
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0  # accepted so far
        self.resets = 0  # connections reset by reset() or cut()
        self.delayed = 0  # chunks forwarded late, by the latency
        self.held = 0  # chunks that arrived during a stall and waited for resume() or heal()
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults ------------------------------------------------------------------------------

    def stall(self) -> None:
        """Stop forwarding (bytes wait in the proxy); connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def reset(self) -> None:
        """Reset every open connection; new ones are accepted."""
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
            self.resets += len(self._clients)
            self._clients.clear()
        for sock in sockets:
            _reset(sock)

    def cut(self) -> None:
        """Reset every connection and refuse new ones (with a reset) until :meth:`heal`."""
        self._refusing = True
        self.reset()

    def heal(self) -> None:
        """Undo :meth:`stall` and :meth:`cut`, and drop the latency."""
        self._refusing = False
        self.latency = 0.0
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self.reset()
        self._thread.join(5)
        self._listener.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refusing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _reset(client)
                continue
            self.connections += 1
            with self._lock:
                self._sockets.update((client, upstream))
                self._clients.add(client)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            src.settimeout(POLL)
            while not self._closed.is_set():
                try:
                    data = src.recv(CHUNK)
                except TimeoutError:
                    continue
                if not data:
                    break
                if not self._flowing.is_set():
                    with self._lock:  # every connection's pipes count into one number
                        self.held += 1
                while not self._flowing.wait(POLL):
                    if self._closed.is_set():
                        return
                if self.latency:
                    with self._lock:
                        self.delayed += 1
                    time.sleep(self.latency)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with self._lock:
                    self._sockets.discard(sock)
                    self._clients.discard(sock)
                with suppress(OSError):
                    sock.close()
