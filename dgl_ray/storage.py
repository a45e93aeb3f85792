"""Storage I/O for local folders and any URI pyarrow reads (``s3://``, ``gs://``, ``file://`` ...).

One module does it for the runner, the trainable and the analysis, on ``pyarrow.fs``
(``FileSystem.from_uri``, ``get_file_info``, ``FileSelector``, ``open_input_stream``), so that a sweep
on S3 is read exactly as a local folder.

- :func:`filesystem` turns a path or URI into (pyarrow filesystem, path). Local paths are made
  absolute. A URI's query (``s3://b/x?endpoint_override=127.0.0.1:9000&scheme=http``) configures the
  filesystem; :func:`join` keeps it at the end of every path printed, so printed paths are usable.
- :class:`Location` is a small pathlib-like view (``/``, ``name``, ``exists``, ``iterdir``,
  ``read_text``) of one file or folder on such a filesystem; ``str()`` is the user's form.
- Failures are one line (:class:`StorageError`): a network failure names the endpoint and what
  failed ("host lookup failed", "connection refused"), not "a URI pyarrow does not understand".
- :func:`write_parquet_atomic` and :func:`write_bytes_atomic` write to a temporary name in the same
  folder, check it, then rename: a killed or failed write leaves the previous file as it was.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

# the part of pyarrow/AWS error texts that says what failed -> our words
_NETWORK_FAILURES = (
    ("resolve host", "host lookup failed"),
    ("resolve hostname", "host lookup failed"),
    ("could not connect", "connection refused"),
    ("couldn't connect", "connection refused"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("ssl", "TLS handshake failed"),
)


class StorageError(OSError):
    """A storage path or URI that cannot be opened, read or written; the message is one line."""


def is_uri(target: str | os.PathLike) -> bool:
    return "://" in str(target)


def split_query(uri: str) -> tuple[str, str]:
    """``s3://b/x?k=v`` -> (``s3://b/x``, ``?k=v``); no query -> (uri, "")."""
    base, sep, query = str(uri).partition("?")
    return base, sep + query


def join(target: str | os.PathLike, *parts: str) -> str:
    """``target`` (a path or URI as the user gave it) joined with relative ``parts``; a URI's query stays
    at the end (``s3://b/x?endpoint_override=h`` + ``name/results.parquet`` ->
    ``s3://b/x/name/results.parquet?endpoint_override=h``)."""
    base, query = split_query(str(target))
    rel = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    if not rel:
        return base + query
    return (base.rstrip("/") + "/" + rel if is_uri(base) else os.path.join(base, rel)) + query


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _endpoint_of(uri: str) -> str:
    """The S3 endpoint a URI talks to, for messages."""
    m = re.search(r"[?&]endpoint_override=([^&]+)", uri)
    if m:
        return m.group(1)
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS (no endpoint set)"


def describe_error(exc: BaseException, target: str) -> str:
    """One line saying what failed for ``target``: unreachable endpoint, bad URI or another OS error."""
    text = _one_line(exc)
    low = text.lower()
    if "network_connection" in low or "curlcode" in low or any(k in low for k, _ in _NETWORK_FAILURES):
        what = next((w for k, w in _NETWORK_FAILURES if k in low), "network error")
        scheme = str(target).split("://", 1)[0].upper()
        where = _endpoint_of(str(target)) if scheme == "S3" else str(target)
        detail = text.split("Details:", 1)[-1].strip() if "Details:" in text else text
        hint = ("; for an S3-compatible server set AWS_ENDPOINT_URL or add ?endpoint_override=HOST:PORT&scheme=http"
                if where.startswith("AWS (") else "")
        return f"could not reach the {scheme} endpoint {where}: {what} ({detail}){hint}"
    return text


def filesystem(target: str | os.PathLike):
    """-> (pyarrow filesystem, path on it) of a local path or a URI; :class:`StorageError` if it cannot be used."""
    import pyarrow.fs as pafs
    target = str(target)
    if not is_uri(target):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(target))
    try:
        return pafs.FileSystem.from_uri(target)
    except Exception as exc:       # ArrowInvalid (a bad URI), OSError (e.g. the bucket's region lookup)
        if isinstance(exc, OSError):
            raise StorageError(describe_error(exc, target)) from None
        raise StorageError(f"not a path or a URI pyarrow understands ({_one_line(exc)})") from None


class Location:
    """One file or folder on a pyarrow filesystem, with the little of pathlib the readers need.

    ``str()`` is the user's form (the URI with its query at the end, or the local path as given)."""

    def __init__(self, fs, path: str, shown: str, info=None):
        self.fs, self.path, self.shown, self._info = fs, path.rstrip("/") or path, shown, info

    @classmethod
    def of(cls, target: "str | os.PathLike | Location") -> "Location":
        if isinstance(target, Location):
            return target
        fs, path = filesystem(target)
        return cls(fs, path, str(target))

    def __truediv__(self, rel: str) -> "Location":
        return Location(self.fs, f"{self.path}/{rel}", join(self.shown, rel))

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:
        return f"Location({self.shown!r})"

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return os.path.splitext(self.name)[1]

    @property
    def parent(self) -> "Location":
        base, query = split_query(self.shown)
        parent_shown = (base.rstrip("/").rsplit("/", 1)[0] if is_uri(base)
                        else os.path.dirname(base.rstrip(os.sep)) or ".") + query
        return Location(self.fs, self.path.rsplit("/", 1)[0], parent_shown)

    @property
    def is_local(self) -> bool:
        import pyarrow.fs as pafs
        return isinstance(self.fs, pafs.LocalFileSystem)

    def _call(self, fn, *args):
        """``fn(*args)``: a missing file stays FileNotFoundError; any other failure is one StorageError line."""
        try:
            return fn(*args)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"{self}: {describe_error(exc, self.shown)}") from None

    def info(self):
        if self._info is None:
            self._info = self._call(self.fs.get_file_info, self.path)
        return self._info

    def exists(self) -> bool:
        import pyarrow.fs as pafs
        return self.info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs as pafs
        return self.info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs
        return self.info().type == pafs.FileType.Directory

    def mtime(self) -> float | None:
        m = self.info().mtime
        return m.timestamp() if m is not None else None

    def iterdir(self) -> list["Location"]:
        """The folder's children (one listing request), each knowing its type and size."""
        import pyarrow.fs as pafs
        infos = self._call(self.fs.get_file_info, pafs.FileSelector(self.path, allow_not_found=True))
        return [Location(self.fs, i.path, join(self.shown, i.base_name), info=i)
                for i in sorted(infos, key=lambda i: i.path)]

    def mkdir(self) -> None:
        """Create this folder and its parents (no error when it exists)."""
        self._call(lambda path: self.fs.create_dir(path, recursive=True), self.path)
        self._info = None

    def read_bytes(self) -> bytes:
        def read(path):
            with self.fs.open_input_stream(path) as f:
                return f.read()
        return self._call(read, self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def read_parquet(self):
        import pandas as pd
        return pd.read_parquet(self.path, filesystem=self.fs)


# ---- writes: temporary name in the same folder, checked, then renamed --------------------------------

def _tmp_name(path: str) -> str:
    head, _, tail = path.rpartition("/")
    return f"{head}/.{tail}.tmp-{os.getpid()}"


def _replace(fs, tmp: str, path: str) -> None:
    """Rename ``tmp`` over ``path``: os.replace locally (atomic); on object stores a server-side copy to
    the final key, which appears whole or not at all, then the temporary key is deleted."""
    import pyarrow.fs as pafs
    if isinstance(fs, pafs.LocalFileSystem):
        os.replace(tmp, path)
    else:
        fs.move(tmp, path)


def _write_checked(fs, path: str, write, check) -> None:
    """``write(fs, tmp)``, ``check(fs, tmp)``, then rename to ``path``; the temporary file is removed on failure."""
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = _tmp_name(path)
    try:
        write(fs, tmp)
        check(fs, tmp)
        _replace(fs, tmp, path)
    except BaseException:
        try:
            fs.delete_file(tmp)
        except Exception:
            pass
        raise


def write_bytes_atomic(target: str | Location, data: bytes) -> None:
    """Write ``data`` to a path or URI; a crash leaves the previous file."""
    loc = Location.of(target)

    def write(fs, tmp):
        with fs.open_output_stream(tmp) as out:
            out.write(data)

    def check(fs, tmp):
        if fs.get_file_info(tmp).size != len(data):
            raise StorageError(f"{loc}: the temporary copy has {fs.get_file_info(tmp).size} bytes, not {len(data)}")
    loc._call(_write_checked, loc.fs, loc.path, write, check)


def write_parquet_atomic(df, target: str | Location) -> None:
    """``df.to_parquet`` (attrs kept in the metadata) to a temporary name beside ``target``, read back
    (row count), then renamed over ``target``: a killed write or a full disk leaves the previous file."""
    import pyarrow.parquet as pq
    loc = Location.of(target)

    def write(fs, tmp):
        with fs.open_output_stream(tmp) as out:
            df.to_parquet(out, index=False)

    def check(fs, tmp):
        rows = pq.ParquetFile(tmp, filesystem=fs).metadata.num_rows
        if rows != len(df):
            raise StorageError(f"{loc}: the temporary copy reads back {rows} rows, not {len(df)}")
    loc._call(_write_checked, loc.fs, loc.path, write, check)


# ---- the sweep storage helpers (formerly in dgl_ray.tune.runner) ---------------------------------------

def storage_fs(storage: str):
    """-> (pyarrow filesystem or None for a local path, path string for RunConfig.storage_path)."""
    if not is_uri(storage):
        return None, os.path.abspath(os.path.expanduser(storage))
    return filesystem(storage)


def experiment_exists(storage: str, name: str) -> bool:
    """True if ``<storage>/<name>`` holds anything (a local folder: anything not hidden)."""
    loc = Location.of(storage) / name
    if not loc.is_dir():
        return loc.exists() and not loc.is_local     # an object store has no folders: any key counts
    return any(not c.name.startswith(".") for c in loc.iterdir())


def read_text(storage: str, rel: str) -> str | None:
    """The text of ``<storage>/<rel>``, or None when there is no such file."""
    try:
        return (Location.of(storage) / rel).read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None


def write_text(storage: str, rel: str, text: str) -> None:
    """Write ``<storage>/<rel>`` atomically (a crash leaves the old one)."""
    write_bytes_atomic(Location.of(storage) / rel, text.encode("utf-8"))


def local_copy(storage: str, name: str, tmp: str) -> str:
    """A local folder holding ``<storage>/<name>``: the folder itself when local, else a copy under ``tmp``."""
    import pyarrow.fs as pafs
    fs, root = storage_fs(storage)
    if fs is None:
        return os.path.join(root, name)
    dst = os.path.join(tmp, name)
    pafs.copy_files(f"{root}/{name}", dst, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return dst


def export_file(local: str, dest: str) -> None:
    """Copy a local file to a path or URI, atomically (temporary name, then rename)."""
    write_bytes_atomic(dest, Path(local).read_bytes())


def fetch_file(src: str, tmpdir: str) -> str:
    """A local copy of a path or URI (the path itself when local)."""
    if not is_uri(src):
        return src
    loc = Location.of(src)
    local = os.path.join(tmpdir, loc.name)
    with open(local, "wb") as out:
        out.write(loc.read_bytes())
    return local
