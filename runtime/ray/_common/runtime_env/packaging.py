"""working_dir / py_modules packages: zip a local directory, name it by its content hash, upload it to
the GCS internal KV as `gcs://_ray_pkg_<hash>.zip`, and download + unpack it on a node.

Ray's layout: packages live in the internal KV under the URI itself (namespace None); on a node they
are unpacked into `<session>/runtime_resources/<kind>_files/<package name without .zip>/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import io
import logging
import os
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ray._common.runtime_env.validation import is_remote_uri

logger = logging.getLogger(__name__)

GCS_PROTOCOL = "gcs://"
PACKAGE_PREFIX = "_ray_pkg_"
# Ray's GCS_STORAGE_MAX_SIZE (512 MiB in current Ray); overridable so tests need not write 512 MiB.
DEFAULT_GCS_STORAGE_MAX_SIZE = 512 * 1024 * 1024
FILE_SIZE_WARNING = 10 * 1024 * 1024


def gcs_storage_max_size() -> int:
    return int(os.environ.get("RAY_GCS_STORAGE_MAX_SIZE", DEFAULT_GCS_STORAGE_MAX_SIZE))


class PackageKV(Protocol):
    def internal_kv_get(self, key: bytes, namespace: bytes | None = None) -> bytes | None: ...

    def internal_kv_put(
        self, key: bytes, value: bytes, overwrite: bool = True, namespace: bytes | None = None
    ) -> int: ...

    def internal_kv_exists(self, key: bytes, namespace: bytes | None = None) -> bool: ...


class PackageTooLargeError(ValueError):
    pass


def _mib(num_bytes: int) -> str:
    return f"{num_bytes / 1024 / 1024:.2f}MiB"


def _too_large_message(size: int) -> str:
    return (
        f"Package size ({_mib(size)}) exceeds the maximum size of {_mib(gcs_storage_max_size())}. "
        "You can exclude large files using the 'excludes' option to the runtime_env or provide a "
        "remote URI of a zip file using protocols such as 's3://', 'https://' and so on, refer to "
        "https://docs.ray.io/en/latest/ray-core/handling-dependencies.html#api-reference."
    )


def _gitignore_patterns(directory: str) -> list[str]:
    if os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE") == "1":
        return []
    path = os.path.join(directory, ".gitignore")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def _is_excluded(relpath: str, patterns: list[str]) -> bool:
    """gitignore-like matching: '/x' is anchored at the root, 'x' matches any path component."""
    parts = relpath.split("/")
    for raw in patterns:
        pattern = raw.rstrip("/")
        if not pattern:
            continue
        if pattern.startswith("/"):
            anchored = pattern[1:]
            if fnmatch.fnmatch(relpath, anchored) or any(
                fnmatch.fnmatch("/".join(parts[: i + 1]), anchored) for i in range(len(parts))
            ):
                return True
        elif "/" in pattern:
            if fnmatch.fnmatch(relpath, pattern) or any(
                fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts))
            ):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def _iter_files(directory: str, excludes: list[str]) -> Iterator[tuple[str, str]]:
    """(absolute path, path relative to `directory` with '/') of every file to package, sorted."""
    patterns = list(excludes) + _gitignore_patterns(directory)
    for root, dirs, files in os.walk(directory):
        rel_root = os.path.relpath(root, directory).replace(os.sep, "/")
        rel_root = "" if rel_root == "." else rel_root + "/"
        dirs[:] = sorted(d for d in dirs if not _is_excluded(rel_root + d, patterns) and d != "__pycache__")
        for name in sorted(files):
            rel = rel_root + name
            if not _is_excluded(rel, patterns):
                yield os.path.join(root, name), rel


def _check_directory(directory: str, what: str) -> str:
    directory = os.path.abspath(os.path.expanduser(directory))
    if not os.path.isdir(directory):
        raise ValueError(f"{what} {directory!r} must be an existing directory or a .zip file.")
    return directory


def package_directory(directory: str, excludes: list[str], include_parent_dir: bool = False) -> tuple[str, bytes]:
    """Zips `directory` and returns (`gcs://_ray_pkg_<hash>.zip`, zip bytes).

    The hash covers every file's relative path and content, so the same tree always gets the same
    URI and an unchanged directory is uploaded once.
    """
    directory = _check_directory(directory, "Directory")
    prefix = os.path.basename(directory.rstrip("/")) + "/" if include_parent_dir else ""
    files = list(_iter_files(directory, excludes))
    total = sum(os.path.getsize(path) for path, _ in files)
    if total > gcs_storage_max_size():
        raise PackageTooLargeError(_too_large_message(total))
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(prefix.encode())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, rel in files:
            size = os.path.getsize(path)
            if size > FILE_SIZE_WARNING:
                logger.warning("File %s is very large (%s); consider adding it to 'excludes'.", path, _mib(size))
            with open(path, "rb") as f:
                content = f.read()
            digest.update(rel.encode() + b"\0" + hashlib.md5(content, usedforsecurity=False).digest())
            info = zipfile.ZipInfo(prefix + rel)
            info.external_attr = (os.stat(path).st_mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    data = buffer.getvalue()
    if len(data) > gcs_storage_max_size():
        raise PackageTooLargeError(_too_large_message(len(data)))
    return f"{GCS_PROTOCOL}{PACKAGE_PREFIX}{digest.hexdigest()}.zip", data


def package_zip_file(path: str) -> tuple[str, bytes]:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) > gcs_storage_max_size():
        raise PackageTooLargeError(_too_large_message(len(data)))
    return f"{GCS_PROTOCOL}{PACKAGE_PREFIX}{hashlib.md5(data, usedforsecurity=False).hexdigest()}.zip", data


def _package_local(value: str, excludes: list[str], include_parent_dir: bool) -> tuple[str, bytes]:
    path = os.path.abspath(os.path.expanduser(value))
    if os.path.isfile(path) and path.endswith(".zip"):
        return package_zip_file(path)
    if os.path.isfile(path) and path.endswith(".whl"):
        raise ValueError(f"py_modules wheel {value!r}: .whl packages are not supported by OpenRay yet.")
    if not os.path.isdir(path):
        raise ValueError(
            f"{value!r} is not an existing local directory or .zip file, nor a remote URI "
            f"(gcs://, https://, s3://, gs://)."
        )
    return package_directory(path, excludes, include_parent_dir)


def upload_local_packages(
    runtime_env: dict[str, Any],
    package_exists: Callable[[str], bool],
    upload: Callable[[str, bytes], None],
) -> dict[str, Any]:
    """Returns `runtime_env` with local working_dir / py_modules replaced by uploaded gcs:// URIs."""
    result = dict(runtime_env)
    excludes = list(runtime_env.get("excludes") or [])

    def ship(value: str, include_parent_dir: bool) -> str:
        if is_remote_uri(value):
            return value
        uri, data = _package_local(value, excludes, include_parent_dir)
        if not package_exists(uri):
            upload(uri, data)
        return uri

    if runtime_env.get("working_dir"):
        result["working_dir"] = ship(runtime_env["working_dir"], include_parent_dir=False)
    if runtime_env.get("py_modules"):
        result["py_modules"] = [ship(m, include_parent_dir=True) for m in runtime_env["py_modules"]]
    # The excludes only matter while packaging; the nodes never see local paths.
    if "working_dir" in result or "py_modules" in result:
        result.pop("excludes", None)
    return result


def upload_working_dir_and_py_modules(runtime_env: dict[str, Any], gcs_client: PackageKV) -> dict[str, Any]:
    """ray.init's path: packages go straight into the GCS internal KV (contract in contracts.md)."""
    return upload_local_packages(
        runtime_env,
        package_exists=lambda uri: gcs_client.internal_kv_exists(uri.encode(), None),
        upload=lambda uri, data: gcs_client.internal_kv_put(uri.encode(), data, True, None),
    )


def package_name(uri: str) -> str:
    """'gcs://_ray_pkg_ab12.zip' -> '_ray_pkg_ab12' (the directory it unpacks into)."""
    name = uri.split("://", 1)[-1].rstrip("/").replace("/", "_")
    return name[: -len(".zip")] if name.endswith(".zip") else name


def _fetch(uri: str, kv: PackageKV | None) -> bytes:
    if uri.startswith(GCS_PROTOCOL):
        if kv is None:
            raise RuntimeError(f"Cannot fetch {uri}: no GCS connection.")
        data = kv.internal_kv_get(uri.encode(), None)
        if data is None:
            raise RuntimeError(f"Failed to download runtime_env file package {uri} from the GCS: it does not exist.")
        return data
    if uri.startswith(("https://", "http://")):
        with urllib.request.urlopen(uri, timeout=60) as response:
            return response.read()
    if uri.startswith("file://"):
        with open(uri[len("file://") :], "rb") as f:
            return f.read()
    raise RuntimeError(f"Cannot fetch {uri}: the {uri.split('://')[0]}:// protocol is not supported by OpenRay.")


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """An exclusive lock shared by every process on the node (agents of several local nodes)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def download_and_unpack_package(uri: str, base_dir: str, kv: PackageKV | None) -> str:
    """Unpacks `uri` under `base_dir` once per node and returns the directory."""
    target = os.path.join(base_dir, package_name(uri))
    with file_lock(target + ".lock"):
        if os.path.isdir(target):
            return target
        data = _fetch(uri, kv)
        staging = tempfile.mkdtemp(prefix=".unpack-", dir=base_dir)
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                _extract_inside(archive, staging, uri)
            root = staging
            entries = os.listdir(staging)
            # Remote zips (e.g. GitHub archives) wrap everything in one top-level directory; Ray strips it.
            if not uri.startswith(GCS_PROTOCOL) and len(entries) == 1 and os.path.isdir(os.path.join(staging, entries[0])):
                root = os.path.join(staging, entries[0])
            os.rename(root, target)
        except zipfile.BadZipFile as e:
            raise RuntimeError(f"runtime_env package {uri} is not a valid zip file: {e}") from e
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_inside(archive: zipfile.ZipFile, target: str, uri: str) -> None:
    """Unpack every entry under `target`, refusing the whole package if an entry would land outside it (an
    absolute name, a `..` step, a symbolic link pointing out). Permissions are applied to the extracted file
    itself, never to a path taken from the archive."""
    root = os.path.realpath(target)
    for info in archive.infolist():
        name = info.filename
        dest = os.path.realpath(os.path.join(root, name))
        mode = info.external_attr >> 16
        escapes = os.path.isabs(name) or ".." in name.replace("\\", "/").split("/")
        if not escapes and stat.S_ISLNK(mode):
            link = archive.read(info).decode("utf-8", "replace")
            escapes = os.path.isabs(link) or not os.path.realpath(
                os.path.join(os.path.dirname(dest), link)).startswith(root + os.sep)
        if escapes or not (dest == root or dest.startswith(root + os.sep)):
            raise ValueError(
                f"runtime_env package {uri} has an entry that points outside its directory ({name!r}); refusing "
                "to unpack it. Package the directory again without absolute paths, '..' or links out of it.")
    for info in archive.infolist():
        path = archive.extract(info, root)
        mode = (info.external_attr >> 16) & 0o777  # zipfile drops permissions; scripts must stay executable
        if mode and not info.is_dir():
            os.chmod(path, mode)


def directory_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
