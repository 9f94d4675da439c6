"""working_dir / py_modules packages: content hash, excludes, size limit, unpacking."""

import os
import stat

import pytest
from ray._common.runtime_env import packaging


def _tree(root, files):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_same_content_same_uri_and_change_gives_new_uri(tmp_path):
    a = _tree(tmp_path / "a", {"main.py": "print(1)", "pkg/mod.py": "x = 1"})
    b = _tree(tmp_path / "b", {"main.py": "print(1)", "pkg/mod.py": "x = 1"})
    uri_a, _ = packaging.package_directory(str(a), [])
    uri_b, _ = packaging.package_directory(str(b), [])
    assert uri_a == uri_b
    assert uri_a.startswith("gcs://_ray_pkg_") and uri_a.endswith(".zip")
    (a / "main.py").write_text("print(2)")
    assert packaging.package_directory(str(a), [])[0] != uri_b


def test_excludes_and_gitignore_leave_files_out(tmp_path):
    root = _tree(tmp_path / "wd", {
        "main.py": "ok", "data/big.bin": "x", "logs/a.log": "x", "sub/keep.py": "ok", ".gitignore": "*.log\n",
    })
    uri, data = packaging.package_directory(str(root), ["data/"])
    out = tmp_path / "out"
    out.mkdir()
    unpacked = packaging.download_and_unpack_package(uri, str(out), _DictKV({uri.encode(): data}))
    files = sorted(os.path.relpath(os.path.join(r, f), unpacked) for r, _, fs in os.walk(unpacked) for f in fs)
    assert files == [".gitignore", "main.py", "sub/keep.py"]


def test_size_limit_gives_rays_message(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_GCS_STORAGE_MAX_SIZE", "1000")
    root = _tree(tmp_path / "wd", {"big.txt": "x" * 5000})
    with pytest.raises(packaging.PackageTooLargeError, match=r"exceeds the maximum size of 0\.00MiB.*excludes"):
        packaging.package_directory(str(root), [])


def test_upload_rewrites_local_paths_once(tmp_path):
    wd = _tree(tmp_path / "wd", {"main.py": "print('hi')"})
    mod = _tree(tmp_path / "mymod", {"__init__.py": "X = 1"})
    kv = _DictKV({})
    env = {"working_dir": str(wd), "py_modules": [str(mod)], "excludes": ["*.tmp"], "env_vars": {"A": "1"}}
    out = packaging.upload_working_dir_and_py_modules(env, kv)
    assert out["working_dir"].startswith("gcs://_ray_pkg_")
    assert out["py_modules"][0].startswith("gcs://_ray_pkg_")
    assert out["env_vars"] == {"A": "1"} and "excludes" not in out
    assert set(kv.data) == {out["working_dir"].encode(), out["py_modules"][0].encode()}
    # py_modules keep their directory name so `import mymod` works from the unpacked root.
    root = packaging.download_and_unpack_package(out["py_modules"][0], str(tmp_path / "nodes"), kv)
    assert os.path.isfile(os.path.join(root, "mymod", "__init__.py"))


def test_not_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not an existing local directory"):
        packaging.upload_local_packages({"working_dir": str(tmp_path / "nope")}, lambda u: False, lambda u, d: None)


def test_unpack_keeps_executable_bits_and_missing_package_is_reported(tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    script = wd / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    uri, data = packaging.package_directory(str(wd), [])
    target = packaging.download_and_unpack_package(uri, str(tmp_path / "n"), _DictKV({uri.encode(): data}))
    assert os.stat(os.path.join(target, "run.sh")).st_mode & stat.S_IXUSR
    with pytest.raises(RuntimeError, match="does not exist"):
        packaging.download_and_unpack_package("gcs://_ray_pkg_missing.zip", str(tmp_path / "n"), _DictKV({}))


class _DictKV:
    """The three KV calls packaging makes, over a dict (the GCS's KV is exercised in integration tests)."""

    def __init__(self, data):
        self.data = dict(data)

    def internal_kv_get(self, key, namespace=None):
        return self.data.get(key)

    def internal_kv_put(self, key, value, overwrite=True, namespace=None):
        added = key not in self.data
        self.data[key] = value
        return int(added)

    def internal_kv_exists(self, key, namespace=None):
        return key in self.data


@pytest.mark.parametrize("entry", ["../escaped.txt", "/tmp/openray-absolute-escape.txt", "a/../../escaped.txt"])
def test_an_entry_outside_the_package_is_refused_and_nothing_is_written_outside(tmp_path, entry):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.py", "x = 1")
        info = zipfile.ZipInfo(entry)
        info.external_attr = (stat.S_IFREG | 0o777) << 16
        archive.writestr(info, "owned")
    uri = "gcs://_ray_pkg_evil.zip"
    nodes = tmp_path / "nodes"
    nodes.mkdir()
    with pytest.raises(ValueError, match="points outside its directory"):
        packaging.download_and_unpack_package(uri, str(nodes), _DictKV({uri.encode(): buffer.getvalue()}))
    assert not (tmp_path / "escaped.txt").exists() and not os.path.exists("/tmp/openray-absolute-escape.txt")
    assert sorted(os.listdir(nodes)) == ["_ray_pkg_evil.lock"]


def test_a_link_pointing_out_of_the_package_is_refused(tmp_path):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("passwd")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    uri = "gcs://_ray_pkg_link.zip"
    with pytest.raises(ValueError, match="'passwd'"):
        packaging.download_and_unpack_package(uri, str(tmp_path), _DictKV({uri.encode(): buffer.getvalue()}))


def test_permissions_apply_to_the_unpacked_file_only(tmp_path):
    import io
    import zipfile

    outside = tmp_path / "outside.sh"
    outside.write_text("echo hi")
    os.chmod(outside, 0o600)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("run.sh")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        archive.writestr(info, "echo ok")
    uri = "gcs://_ray_pkg_perm.zip"
    root = packaging.download_and_unpack_package(uri, str(tmp_path / "n"), _DictKV({uri.encode(): buffer.getvalue()}))
    assert stat.S_IMODE(os.stat(os.path.join(root, "run.sh")).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o600
