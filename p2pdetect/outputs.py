"""Opening outputs safely, the way cp, tcpdump -w and shells treat them (DESIGN.md invariant 8).

Every command that writes goes through this module:

* a **regular file** (new, existing, or reached through a symlink) is written to a temporary
  name in the target's directory, fsynced and renamed over the target: never half-written; a
  symlink stays a symlink and its target is replaced. A new file gets mode 0666 minus the
  umask, a replaced file keeps its mode (and, for root, its owner);
* a **device** (/dev/null, /dev/full), a **FIFO**, or **standard output** (``-``,
  ``/dev/stdout``, ``/dev/fd/N``) is written to directly, as a stream: nothing is replaced;
* an output that is **one of the command's inputs** (same file after symlinks) is refused,
  and so are directories, sockets and, for binary formats, a terminal.

Directory outputs (model bundles, reports) are built in a temporary directory beside the
target and renamed into place (``new_output_dir``, ``commit_dir``).

Like ``errors.py`` this is a leaf module that every layer may use: it imports nothing of ours
but ``p2pdetect.errors``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from p2pdetect.errors import OutputError

#: names that mean an inherited descriptor, written to as a stream (never opened or replaced)
_FD_NAME = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")
_STD_NAMES = {"-": 1, "/dev/stdout": 1, "/dev/stderr": 2}


def describe(err: OSError) -> str:
    """The reason an output broke, for a one-line message."""
    if err.errno == errno.EPIPE:
        return "the reader closed the pipe"
    return err.strerror or str(err)


def umask() -> int:
    """This process's umask, read without changing it (Linux /proc; elsewhere set and restore)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is out: a signal that lands mid-write (SIGTERM asking the
    scorer to flush) makes write() return a partial count, which a buffered file could lose."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _refuse_inputs(name: str, st: os.stat_result, inputs: Iterable[str | os.PathLike]) -> None:
    for inp in inputs:
        try:
            if _same_file(st, os.stat(inp)):
                raise OutputError(f"{name}: is also an input ({inp}); write the output to another path")
        except OSError:
            continue  # an input that does not exist cannot be overwritten


class _Target:
    """Where an output goes, decided once: an inherited descriptor, a stream to open, or a
    regular file to replace atomically (symlinks resolved)."""

    def __init__(self, path: str | os.PathLike, inputs: Iterable[str | os.PathLike], binary: bool) -> None:
        self.name = str(path)
        self.fd: int | None = None          # inherited descriptor (stdout, /dev/fd/N)
        self.path: Path | None = None       # stream: the path to open; file: the file to replace
        self.stream = True
        self.keep: os.stat_result | None = None  # the replaced file's mode and owner
        fd = _STD_NAMES.get(self.name)
        m = _FD_NAME.match(self.name)
        if fd is not None or m:
            self.fd = fd if fd is not None else int(m.group(1))
            try:
                st = os.fstat(self.fd)
            except OSError as err:
                raise OutputError(f"{self.name}: descriptor {self.fd} is not open; "
                                  f"choose another output path") from err
        else:
            p = Path(path)
            try:
                st = os.stat(p)
            except FileNotFoundError:
                st = None
            except OSError as err:
                raise OutputError(f"{self.name}: cannot use as an output ({describe(err)}); "
                                  f"choose another output path") from err
            if (st is not None and stat.S_ISDIR(st.st_mode)) or self.name.endswith("/"):
                raise OutputError(f"{self.name}: is a directory; give a file name for the output")
            if st is not None and stat.S_ISSOCK(st.st_mode):
                raise OutputError(f"{self.name}: is a socket, which cannot be written as a file; "
                                  f"choose another output path")
            if st is None or stat.S_ISREG(st.st_mode):
                self.stream = False
                self.keep = st
                self.path = Path(os.path.realpath(p))  # a symlink's target (existing or to be made)
                parent = self.path.parent
                if not parent.is_dir():
                    raise OutputError(f"{self.name}: directory {parent} does not exist; create it or "
                                      f"choose another output path")
            else:
                self.path = p  # a device or FIFO: written in place, as a stream
        if st is not None:
            _refuse_inputs(self.name, st, inputs)
            if binary and self.stream and stat.S_ISCHR(st.st_mode) and _is_terminal(self):
                raise OutputError(f"{self.name}: is a terminal; redirect the binary output to a file "
                                  f"or a pipe")


def _is_terminal(target: _Target) -> bool:
    if target.fd is not None:
        return os.isatty(target.fd)
    try:
        fd = os.open(target.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.isatty(fd)
    finally:
        os.close(fd)


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                 binary: bool = False) -> None:
    """Fail early (before long work) when `path` cannot take an output: every refusal of
    OutputFile, plus a real probe that the target's directory takes a new file."""
    target = _Target(path, inputs, binary)
    if target.stream:
        return
    parent = target.path.parent
    try:  # a real probe: access() says yes to root even on read-only file systems
        fd, probe = tempfile.mkstemp(prefix=f".{target.path.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"{target.name}: cannot write in {parent} ({err.strerror}); "
                          f"choose another output path") from err


class OutputFile:
    """An output open for writing at `fd`; ``commit()`` finishes it, ``discard()`` gives up.

    A regular file is a temporary file until commit() renames it into place (discard()
    removes it); with append=True it is opened in place instead (a live run that a reader
    tails). Streams are written directly; commit and discard only close them.
    """

    def __init__(self, path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                 append: bool = False, binary: bool = False) -> None:
        target = _Target(path, inputs, binary)
        self.name = target.name
        self.stream = target.stream
        self._tmp: Path | None = None
        self._path = target.path
        self._done = False
        try:
            if target.fd is not None:
                if target.fd == 1:
                    sys.stdout.flush()
                self.fd = os.dup(target.fd)
            elif target.stream:
                self.fd = os.open(target.path, os.O_WRONLY | os.O_NOCTTY | (os.O_APPEND if append else 0))
            elif append:
                self.fd = os.open(target.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
                self.stream = True  # written in place from now on
            else:
                fd, tmp = tempfile.mkstemp(prefix=f".{target.path.name}.", suffix=".tmp",
                                           dir=target.path.parent)
                self.fd, self._tmp = fd, Path(tmp)
                _set_mode(fd, target.keep)
        except OSError as err:
            self.discard()
            raise OutputError(f"{self.name}: cannot open for writing ({describe(err)}); "
                              f"choose another output path") from err

    def commit(self) -> None:
        """Finish the output: fsync and rename a temporary file into place, close a stream."""
        if self._done:
            return
        try:
            if self._tmp is not None:
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            if self._tmp is not None:
                os.replace(self._tmp, self._path)
                self._tmp = None
                _fsync_dir(self._path.parent)
        except OSError as err:
            self.discard()
            raise OutputError(f"{self.name}: cannot write ({describe(err)}); check free space "
                              f"and permissions") from err
        self._done = True

    def discard(self) -> None:
        """Give up: close, and remove the temporary file (a stream keeps what it was sent)."""
        self._done = True
        if getattr(self, "fd", -1) >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None


@contextmanager
def open_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                binary: bool = True) -> Iterator[BinaryIO]:
    """A binary file object for one output; committed when the block ends, discarded when it
    raises. OSErrors while writing become one OutputError ('No space left on device', …)."""
    out = OutputFile(path, inputs=inputs, binary=binary)
    try:
        with os.fdopen(os.dup(out.fd), "wb") as fh:
            yield fh
        out.commit()
    except OSError as err:
        out.discard()
        raise OutputError(f"{out.name}: cannot write ({describe(err)}); check free space "
                          f"and permissions") from err
    except BaseException:
        out.discard()
        raise


def _set_mode(fd: int, keep: os.stat_result | None) -> None:
    """mkstemp makes 0600 files: give a new file 0666 minus the umask (what open() would), and
    a replacement the mode (and, when allowed, the owner) of the file it replaces."""
    if keep is None:
        os.fchmod(fd, 0o666 & ~umask())
        return
    try:
        os.fchown(fd, keep.st_uid, keep.st_gid)
    except OSError:
        pass  # not root: the file becomes ours, as cp's new files do
    os.fchmod(fd, stat.S_IMODE(keep.st_mode))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- directory outputs (model bundles, reports) -------------------------------------------

def check_output_dir(path: str | os.PathLike, what: str, replaceable: Callable[[Path], bool], *,
                     inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Fail early when an output directory (a model bundle, a report) cannot be written; returns
    the directory to write (a symlink resolved to its target).

    An existing directory may be replaced only when replaceable(path) says it holds an earlier
    output of the same kind (or nothing); anything else is refused, and so is a directory that
    holds one of the inputs (replacing it would delete them).
    """
    name = str(path)
    path = Path(os.path.realpath(path))
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"{name}: directory {parent} does not exist; create it or choose another "
                          f"output path")
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{name}: exists and is not a directory; choose another {what} directory")
        if any(True for _ in path.iterdir()) and not replaceable(path):
            raise OutputError(f"{name}: directory exists and is not a {what}; choose a new or empty "
                              f"directory")
        for inp in inputs:
            real = Path(os.path.realpath(inp))
            if real == path or path in real.parents:
                raise OutputError(f"{name}: holds an input ({inp}), which writing the {what} would "
                                  f"delete; choose another output directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".probe", dir=parent))
    except OSError as err:
        raise OutputError(f"{name}: cannot write in {parent} ({err.strerror}); choose another "
                          f"output path") from err
    return path


def new_output_dir(path: Path) -> Path:
    """A temporary directory beside `path` to build a directory output in (mode 0777 minus
    the umask, as mkdir would make it, not mkdtemp's 0700)."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~umask())
    except OSError as err:
        raise OutputError(f"{path}: cannot create a directory in {path.parent} ({err.strerror}); "
                          f"check permissions") from err
    return tmp


def commit_dir(tmp: Path, path: Path) -> None:
    """Move the finished directory `tmp` into place as `path` after fsyncing its files; an
    earlier output at `path` is replaced (put back if the move fails). Raises OSError."""
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
        os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except OSError:
            os.replace(old / path.name, path)
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    _fsync_dir(path.parent)
