"""Job records and request validation: Ray's field names, default messages and clear rejections."""

import pytest
from ray.dashboard.modules.job.common import (
    JobInfo,
    JobStatus,
    generate_submission_id,
    validate_submission_id,
)
from ray.dashboard.modules.job.models import JobDetails, JobSubmitRequest
from ray.dashboard.modules.job.placement import choose_node


def test_default_messages_follow_ray():
    assert JobInfo(status=JobStatus.PENDING, entrypoint="x").message == "Job has not started yet."
    pending = JobInfo(status="PENDING", entrypoint="x", entrypoint_num_cpus=1, runtime_env={"pip": {"packages": []}})
    assert pending.message == (
        "Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to "
        "become available. It may be waiting for the runtime environment to be set up."
    )
    assert JobInfo(status="STOPPED", entrypoint="x").message == "Job was intentionally stopped."
    assert JobStatus.SUCCEEDED.is_terminal() and not JobStatus.RUNNING.is_terminal()


def test_job_info_round_trips_and_details_use_rays_fields():
    info = JobInfo(status=JobStatus.RUNNING, entrypoint="python x.py", metadata={"a": "b"}, driver_exit_code=None)
    assert JobInfo.from_json(info.to_json()) == info
    details = JobDetails.from_job_info("raysubmit_abc", info).to_json()
    assert details["type"] == "SUBMISSION" and details["status"] == "RUNNING"
    assert details["submission_id"] == "raysubmit_abc" and details["job_id"] is None
    assert set(details) >= {"driver_info", "message", "error_type", "start_time", "end_time", "metadata",
                            "runtime_env", "driver_agent_http_address", "driver_node_id", "driver_exit_code"}
    # A newer server may send fields this client does not know.
    assert JobDetails.from_dict({**details, "attempt_number": 2}).status == JobStatus.RUNNING


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "must be a JSON object"),
        ({}, "missing the required field 'entrypoint'"),
        ({"entrypoint": "  "}, "non-empty string"),
        ({"entrypoint": "x", "bogus": 1}, "unexpected keyword arguments: \\['bogus'\\]"),
        ({"entrypoint": "x", "metadata": {"a": 1}}, "metadata must be a dict of strings"),
        ({"entrypoint": "x", "entrypoint_num_cpus": "2"}, "entrypoint_num_cpus must be a number"),
        ({"entrypoint": "x", "entrypoint_num_gpus": -1}, "must be non-negative"),
        ({"entrypoint": "x", "entrypoint_resources": {"CPU": 1}}, "Use entrypoint_num_cpus"),
    ],
)
def test_bad_submit_requests_are_rejected_with_the_reason(body, message):
    with pytest.raises((TypeError, ValueError), match=message):
        JobSubmitRequest.from_json(body)


def test_submission_ids():
    generated = generate_submission_id()
    assert generated.startswith("raysubmit_") and len(generated) == len("raysubmit_") + 16
    validate_submission_id(generated)
    with pytest.raises(ValueError, match="Invalid submission_id"):
        validate_submission_id("has space/slash")


def test_placement_prefers_the_head_and_honours_resources_and_labels():
    head = {"NodeID": "h", "Alive": True, "IsHeadNode": True, "Resources": {"CPU": 2.0}, "Labels": {}}
    gpu = {"NodeID": "g", "Alive": True, "IsHeadNode": False, "Resources": {"CPU": 4.0, "GPU": 1.0},
           "Labels": {"zone": "b"}}
    dead = {"NodeID": "d", "Alive": False, "IsHeadNode": False, "Resources": {"special": 1.0}, "Labels": {}}
    nodes = [gpu, head, dead]
    assert choose_node(nodes, JobInfo(status="PENDING", entrypoint="x", entrypoint_num_cpus=1))["NodeID"] == "h"
    assert choose_node(nodes, JobInfo(status="PENDING", entrypoint="x", entrypoint_num_gpus=1))["NodeID"] == "g"
    assert choose_node(nodes, JobInfo(status="PENDING", entrypoint="x",
                                      entrypoint_label_selector={"zone": "in(a,b)"}))["NodeID"] == "g"
    assert choose_node(nodes, JobInfo(status="PENDING", entrypoint="x", entrypoint_resources={"special": 1})) is None


def test_resources_of_running_jobs_are_not_offered_again():
    from ray.dashboard.modules.job.placement import used_by_jobs

    head = {"NodeID": "h", "Alive": True, "IsHeadNode": True, "Resources": {"CPU": 2.0}, "Labels": {}}
    running = JobInfo(status="RUNNING", entrypoint="x", entrypoint_num_cpus=1.5, driver_node_id="h")
    done = JobInfo(status="SUCCEEDED", entrypoint="x", entrypoint_num_cpus=2, driver_node_id="h")
    used = used_by_jobs({"a": running, "b": done})
    assert used == {"h": {"CPU": 1.5}}
    assert choose_node([head], JobInfo(status="PENDING", entrypoint="x", entrypoint_num_cpus=1), used) is None
    assert choose_node([head], JobInfo(status="PENDING", entrypoint="x", entrypoint_num_cpus=0.5), used) is head


def test_gpu_ids_are_the_lowest_free_ones_on_the_node():
    from ray.dashboard.modules.job.placement import assign_gpu_ids

    node = {"NodeID": "g", "Resources": {"GPU": 4.0}}
    holding = JobInfo(status="RUNNING", entrypoint="x", entrypoint_num_gpus=2, driver_node_id="g",
                      entrypoint_gpu_ids=[0, 2])
    elsewhere = JobInfo(status="RUNNING", entrypoint="x", driver_node_id="other", entrypoint_gpu_ids=[1])
    job = JobInfo(status="PENDING", entrypoint="x", entrypoint_num_gpus=2)
    assert assign_gpu_ids(job, node, {"a": holding, "b": elsewhere}) == [1, 3]
    assert assign_gpu_ids(JobInfo(status="PENDING", entrypoint="x", entrypoint_num_gpus=0.5), node, {}) == [0]
    assert assign_gpu_ids(JobInfo(status="PENDING", entrypoint="x"), node, {}) is None
