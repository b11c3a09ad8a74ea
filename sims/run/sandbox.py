"""Processes that fits run in: worker hygiene, and a sandbox whose death costs one fit.

Every worker process of a study (loky's, a sandbox's) calls :func:`prepare_worker` first: it
ignores SIGINT, so that the user's Ctrl-C, which the terminal sends to the whole process
group, reaches only the main process (which stops the workers itself), and it exits as soon as
its parent is gone, so that no worker outlives a main process killed with ``kill -9``.

A :class:`Sandbox` is one child process that runs functions in its main thread (where
SIGALRM time-outs work) and sends back their results. When a fit in it calls ``os.abort()``,
segfaults in compiled code or is killed for its memory, the caller gets :class:`WorkerDied`
with the cause, instead of losing its own process, and the next call starts a fresh child.
A process that runs no threads but its parent watch (a loky worker) forks the child, which
then starts warm, with the worker's imports and design caches; any other (a dask worker, with
its event loop and communication threads) starts a fresh interpreter with its ``sys.path``,
as a plain ``subprocess``, which a daemonic process may do, unlike ``multiprocessing``.
"""
from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator

import cloudpickle

PARENT_POLL_S = 0.5  # how often a worker checks that its parent is still alive
WATCH_THREAD = "clustersim-parent-watch"
# The command line's thread that waits for Ctrl-C (sims.run.errors): it holds no lock while it
# waits, so a process that runs it may fork.
INTERRUPT_THREAD = "clustersim-interrupt"
FORK_SAFE_THREADS = (WATCH_THREAD, INTERRUPT_THREAD)
_HEADER = struct.Struct("!Q")


def prepare_worker() -> None:
    """Set up a worker process: SIGINT ignored, and an exit once the parent process is gone."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)  # orphaned (the parent was killed): no flushing, no atexit handlers

    threading.Thread(target=watch, name=WATCH_THREAD, daemon=True).start()


class WorkerDied(RuntimeError):
    """The sandbox's process ended while it ran a call (a signal, ``os._exit``, the OOM killer)."""

    def __init__(self, returncode: int):
        self.returncode = returncode
        super().__init__(f"worker died ({self.cause})")

    @property
    def cause(self) -> str:
        if self.returncode < 0:
            number = -self.returncode
            try:
                return f"signal {number}, {signal.Signals(number).name}"
            except ValueError:
                return f"signal {number}"
        return f"exit code {self.returncode}"

    def __reduce__(self):
        return type(self), (self.returncode,)


def _write(stream, obj: Any, dumps=pickle.dumps) -> None:
    data = dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exactly(stream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = stream.read(size - len(data))
        if not part:
            raise EOFError
        data += part
    return bytes(data)


def _read(stream) -> Any:
    (size,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    return pickle.loads(_read_exactly(stream, size))


def _picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def serve() -> None:
    """The sandbox child's entry point when started as a fresh interpreter: requests on stdin,
    answers on the original stdout (fd 1 is pointed at stderr, so that what a fit prints cannot
    garble the answers)."""
    requests = os.fdopen(0, "rb", buffering=0)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    prepare_worker()
    _serve(requests, answers)


def _serve(requests, answers) -> None:
    """Read ``(function, args, stream)`` requests and answer each; return when input ends."""
    while True:
        try:
            function, args, stream = _read(requests)
        except EOFError:
            return
        try:
            if stream:
                for item in function(*args):
                    _write(answers, ("item", item))
                _write(answers, ("end", None))
            else:
                _write(answers, ("value", function(*args)))
        except BaseException as error:  # the caller decides; the child serves on
            _write(answers, ("error", _picklable(error)))


class _ForkedChild:
    """A forked sandbox child, with the part of ``subprocess.Popen``'s interface used here."""

    def __init__(self):
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without running the parent's exit handlers
            code = 0
            try:
                os.close(request_write)
                os.close(answer_read)
                prepare_worker()
                _serve(os.fdopen(request_read, "rb", buffering=0), os.fdopen(answer_write, "wb"))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(request_read)
        os.close(answer_write)
        self.pid = pid
        self.stdin = os.fdopen(request_write, "wb")
        self.stdout = os.fdopen(answer_read, "rb")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is None:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"sandbox {self.pid}", timeout)
            else:
                time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


def _may_fork() -> bool:
    """Forking is safe where no other thread can hold a lock the child would need: in the main
    thread of a process that runs no threads but its parent watch and the command line's
    Ctrl-C waiter (:data:`FORK_SAFE_THREADS`)."""
    return (hasattr(os, "fork") and threading.current_thread() is threading.main_thread()
            and all(t is threading.main_thread() or t.name in FORK_SAFE_THREADS for t in threading.enumerate()))


class Sandbox:
    """A child process for calls that may kill their process; started on first use and again
    after a death."""

    def __init__(self):
        self.process: subprocess.Popen | _ForkedChild | None = None

    def start(self) -> None:
        """Start the child now rather than at the first call (forked, when this process may
        fork: it then starts with this process's imports and objects, at no cost of its own)."""
        self._start()

    def _start(self):
        if self.process is None or self.process.poll() is not None:
            if _may_fork():
                self.process = _ForkedChild()
            else:
                bootstrap = (f"import sys; sys.path[:] = {sys.path!r}; "
                             "from sims.run.sandbox import serve; serve()")
                self.process = subprocess.Popen([sys.executable, "-c", bootstrap],
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self.process

    def _answers(self, function: Callable, args: tuple, stream: bool) -> Iterator[tuple[str, Any]]:
        process = self._start()
        try:
            _write(process.stdin, (function, args, stream), dumps=cloudpickle.dumps)
            while True:
                yield _read(process.stdout)
        except (EOFError, BrokenPipeError):
            returncode = process.wait()
            self.process = None
            process.stdin.close()
            process.stdout.close()
            raise WorkerDied(returncode) from None

    def call(self, function: Callable, *args) -> Any:
        """``function(*args)`` in the child; raises what it raised, or :class:`WorkerDied`."""
        kind, value = next(self._answers(function, args, stream=False))
        if kind == "error":
            raise value
        return value

    def stream(self, function: Callable, *args) -> Iterator[Any]:
        """The items of the generator ``function(*args)``, each as soon as the child yields
        it; raises :class:`WorkerDied` after the last item the child sent before it died."""
        answers = self._answers(function, args, stream=True)
        for kind, value in answers:
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self, wait: float = 5) -> None:
        """End the child: at the end of its input, or killed after ``wait`` seconds (at once
        with ``wait=0``, for a call left unfinished)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.stdin.close()  # the child's loop ends at end of input
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


_local = threading.local()


def worker_sandbox() -> Sandbox:
    """This thread's sandbox, kept for the worker's lifetime (a warm process: its imports and
    design caches serve every chunk the worker runs)."""
    sandbox = getattr(_local, "sandbox", None)
    if sandbox is None:
        sandbox = _local.sandbox = Sandbox()
    return sandbox
