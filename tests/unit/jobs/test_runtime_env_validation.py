"""runtime_env validation and Ray's merge rule (child replaces fields, env_vars merge)."""

import pytest
from ray._common.runtime_env.validation import merge_runtime_envs, validate_runtime_env
from ray.runtime_env import RuntimeEnv, RuntimeEnvConfig


def test_unknown_field_names_the_field_and_the_valid_ones():
    with pytest.raises(ValueError) as e:
        validate_runtime_env({"env_var": {"A": "1"}})
    assert "Unknown runtime_env field 'env_var'" in str(e.value)
    assert "env_vars" in str(e.value) and "working_dir" in str(e.value)


def test_unsupported_field_is_refused_with_the_alternative():
    with pytest.raises(ValueError, match="'conda' is not supported by OpenRay.*pip"):
        validate_runtime_env({"conda": {"dependencies": ["numpy"]}})


@pytest.mark.parametrize(
    "env, message",
    [
        ({"env_vars": {"A": 1}}, "dict of strings to strings"),
        ({"pip": 3}, r"runtime_env\[.pip.\] must be a list"),
        ({"py_modules": "mod"}, "py_modules'] must be a list"),
        ({"working_dir": "https://example.com/code"}, "must point to a .zip file"),
        ({"config": {"setup_timeout_seconds": 0}}, "setup_timeout_seconds"),
        ({"pip": ["a"], "uv": ["b"]}, "only one of 'pip' and 'uv'"),
    ],
)
def test_bad_values_say_what_is_wrong(env, message):
    with pytest.raises((TypeError, ValueError), match=message):
        validate_runtime_env(env)


def test_pip_forms_are_normalised(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nemoji==2.8.0\n\nrequests\n")
    assert validate_runtime_env({"pip": ["emoji"]})["pip"] == {"packages": ["emoji"], "pip_check": False}
    assert validate_runtime_env({"pip": str(requirements)})["pip"]["packages"] == ["emoji==2.8.0", "requests"]
    assert validate_runtime_env({"pip": {"packages": ["x"], "pip_check": True}})["pip"]["pip_check"] is True
    with pytest.raises(ValueError, match="could not be read"):
        validate_runtime_env({"pip": str(tmp_path / "missing.txt")})


def test_merge_child_replaces_fields_and_merges_env_vars():
    parent = {"pip": {"packages": ["a"]}, "env_vars": {"A": "1", "B": "1"}, "working_dir": "gcs://x.zip"}
    child = {"pip": {"packages": ["b"]}, "env_vars": {"B": "2", "C": "3"}}
    merged = merge_runtime_envs(parent, child)
    assert merged == {
        "pip": {"packages": ["b"]},
        "env_vars": {"A": "1", "B": "2", "C": "3"},
        "working_dir": "gcs://x.zip",
    }
    assert parent["env_vars"] == {"A": "1", "B": "1"}  # inputs untouched


def test_runtime_env_class_is_a_validated_dict():
    env = RuntimeEnv(pip=["emoji"], env_vars={"A": "1"}, config=RuntimeEnvConfig(setup_timeout_seconds=30))
    assert env["pip"]["packages"] == ["emoji"]
    assert env.env_vars() == {"A": "1"}
    assert RuntimeEnv.deserialize(env.serialize()) == env
    with pytest.raises(ValueError, match="Unknown runtime_env field 'bogus'"):
        RuntimeEnv(bogus=1)
