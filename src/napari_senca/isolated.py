"""Run code that holds the GIL for seconds in another process, so that the viewer keeps drawing.

A napari worker thread keeps the viewer responsive only while the work lets go
of the GIL. umap-learn's layout kernels (numba, compiled without ``nogil``)
hold it for 1.5-2 s at a time on 160,000 bins, so a UMAP computed in a thread
froze the viewer again and again until it was done. :func:`call_isolated`
runs such a function in one helper process kept for the session
(``python -m napari_senca.isolated``; the first call pays its start and
imports, later calls reuse it) and waits for it from the calling worker
thread. The helper is a plain interpreter reading pickled calls from its
stdin, not a ``multiprocessing`` child: those re-run the user's ``__main__``
script when it has no ``if __name__ == "__main__"`` guard, which a script
that opens napari usually has not. Where no helper can start (a frozen app
whose executable is not Python, a sandbox), the function runs in the calling
thread as before.

No Qt here: the widget calls :func:`call_isolated` in its worker thread.
"""

from __future__ import annotations

import atexit
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, TypeVar

from .errors import SencaError

__all__ = ["call_isolated", "shutdown", "helper_pid"]

T = TypeVar("T")
_READY = b"napari-senca helper ready"

_lock = threading.Lock()  # one call at a time; guards _proc
_proc: subprocess.Popen | None = None
_unavailable = False  # a helper could not start: run everything here


def _dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _write_frame(stream: IO[bytes], data: bytes) -> None:
    """One message: its length (8 bytes) and its bytes."""
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes:
    """One message's bytes; ``EOFError`` when the stream ends before it does."""
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return data


def _send(stream: IO[bytes], obj: Any) -> None:
    _write_frame(stream, _dumps(obj))


def _recv(stream: IO[bytes]) -> Any:
    return pickle.loads(_read_frame(stream))


def _start() -> subprocess.Popen | None:
    """A new helper that has answered the handshake, or None when none can start."""
    proc = None
    try:
        # its own session: Ctrl-C in the terminal stops the viewer, not the helper's answer half-way
        proc = subprocess.Popen([sys.executable, "-m", "napari_senca.isolated"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, start_new_session=True)  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        _send(proc.stdin, list(sys.path))  # the helper imports what this process can import
        if _recv(proc.stdout) == _READY:
            return proc
    except Exception:  # anything that is not the handshake: no helper
        pass
    if proc is not None:
        _kill(proc)
    return None


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    try:
        proc.wait(timeout=5)  # reaped: no zombie left
    except subprocess.TimeoutExpired:
        pass


@atexit.register
def _stop_at_exit() -> None:
    """The helper ends with the session, also in the middle of a call."""
    if _proc is not None:
        _kill(_proc)


def shutdown() -> None:
    """Stop the session's helper (a later call starts a new one)."""
    global _proc
    proc, _proc = _proc, None
    if proc is not None:
        try:
            proc.stdin.close()  # type: ignore[union-attr]  # the helper's loop ends at EOF
            proc.wait(timeout=5)
        except Exception:
            _kill(proc)


def helper_pid() -> int | None:
    """Process id of the running helper (None: none started, or none can start)."""
    return None if _proc is None else _proc.pid


def call_isolated(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the session's helper process; in this thread where no helper can start.

    Parameters
    ----------
    fn
        A module-level function (it is sent to the helper by name); its
        arguments and result are pickled (a 500,000 x 30 embedding: 0.1 s).
    *args
        Its arguments.

    Returns
    -------
    Whatever ``fn`` returns; an exception ``fn`` raises is raised here.

    Raises
    ------
    SencaError
        The helper stopped during the call (killed, or out of memory).
    """
    global _proc, _unavailable
    with _lock:
        if _proc is None and not _unavailable:
            _proc = _start()
            _unavailable = _proc is None
        if _proc is None:
            return fn(*args)
        proc = _proc
        request = _dumps((fn, args))  # raises here if it cannot be sent
        try:
            _write_frame(proc.stdin, request)  # type: ignore[arg-type]
            ok, value = _recv(proc.stdout)  # type: ignore[arg-type]
        except Exception as exc:  # died, or its answer is unreadable: this helper is done
            try:
                code: int | str = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = "still running"
            shutdown()
            raise SencaError(f"the helper process running {getattr(fn, '__name__', fn)} stopped answering"
                             f" (exit code {code}; out of memory?)") from exc  # fmt: skip
    if not ok:
        raise value
    return value


def _round_trips(exc: BaseException) -> bool:
    """True when the caller can unpickle ``exc`` (not every exception's ``__init__`` takes its ``args``)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return True
    except Exception:
        return False


def _serve() -> None:
    """The helper's loop: read ``(fn, args)``, answer ``(True, result)`` or ``(False, exception)``, until EOF."""
    import os

    inp = sys.stdin.buffer
    # the answers go to a private copy of the pipe; file descriptor 1 becomes stderr, so whatever the functions
    # print (Python, C libraries, child processes) cannot mix with them
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path[:] = _recv(inp)
    _send(out, _READY)
    while True:
        try:
            data = _read_frame(inp)
        except (EOFError, OSError, ValueError):  # the caller closed the pipe: the session is over
            return
        try:
            fn, args = pickle.loads(data)  # the whole request is read: a failure here is answered
        except Exception as exc:
            _send(out, (False, SencaError(f"the helper could not read the call: {type(exc).__name__}: {exc}")))
            continue
        try:
            answer = (True, fn(*args))
        except BaseException as exc:  # sent back and raised by the caller
            answer = (False, exc if _round_trips(exc) else SencaError(f"{type(exc).__name__}: {exc}"))
        try:
            _send(out, answer)
        except Exception as exc:  # an answer that does not pickle
            _send(out, (False, SencaError(f"{type(exc).__name__}: {exc}")))


if __name__ == "__main__":
    _serve()
