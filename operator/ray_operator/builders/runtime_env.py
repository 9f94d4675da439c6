"""A RayJob's runtime environment as the JSON that `ray job submit --runtime-env-json` takes.

Two spellings exist: v1's `runtimeEnvYAML` (multi-line YAML) and the base64 `runtimeEnv` of
v1alpha1 (KubeRay <= v1.0, used by the seed's rayjob-sample.yaml). Both end up as one JSON object.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import yaml


class RuntimeEnvError(ValueError):
    """The RayJob's runtime environment cannot be read; the message says which field and why."""


def decode_runtime_env(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The runtime env of a RayJob spec as a dict, or None when it sets none."""
    yaml_text = spec.get("runtimeEnvYAML")
    b64_text = spec.get("runtimeEnv")
    if yaml_text and b64_text:
        raise RuntimeEnvError(
            "spec.runtimeEnvYAML and spec.runtimeEnv are both set; keep one "
            "(runtimeEnv is the base64 field of ray.io/v1alpha1, runtimeEnvYAML replaces it in ray.io/v1)"
        )
    if yaml_text:
        return _parse_yaml(yaml_text, "spec.runtimeEnvYAML")
    if b64_text:
        return _parse_yaml(_decode_base64(b64_text), "spec.runtimeEnv (after base64 decoding)")
    return None


def runtime_env_json(spec: dict[str, Any]) -> str | None:
    """The `--runtime-env-json` argument for a RayJob spec (compact JSON), or None."""
    runtime_env = decode_runtime_env(spec)
    if runtime_env is None:
        return None
    return json.dumps(runtime_env, separators=(",", ":"))


def _decode_base64(text: str) -> str:
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise RuntimeEnvError(
            f"spec.runtimeEnv is not valid base64 ({err}); encode the runtime env JSON with "
            "`base64 -w0`, or use spec.runtimeEnvYAML with plain YAML instead"
        ) from err
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RuntimeEnvError("spec.runtimeEnv decodes to bytes that are not UTF-8 text") from err


def _parse_yaml(text: str, field: str) -> dict[str, Any]:
    # JSON is YAML, so one parser reads both spellings.
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RuntimeEnvError(f"{field} is not valid JSON or YAML: {err}") from err
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RuntimeEnvError(
            f"{field} must be a mapping such as {{pip: [requests], env_vars: {{A: b}}}}, "
            f"got a {type(value).__name__}: {str(value)[:80]!r}"
        )
    return value
