"""Pieces of issue 10's logs and metrics that need no processes: log deduplication and prefixes, safe log file
names, the `ray.util.metrics` API's errors, and the Prometheus text the agent renders."""

from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families
from ray._common import log_files
from ray._private.log_dedup import DEDUP_HINT, LogDeduplicator
from ray._private.log_printer import line_prefix
from ray.agent.metrics.exporter import RayCollector, render
from ray.agent.metrics.user_metrics import PushError, UserMetricsStore
from ray.util.metrics import Counter, Gauge, Histogram


def _batch(pid, line, ip="127.0.0.1"):
    return {"ip": ip, "pid": pid, "job": "01000000", "is_err": False, "lines": [line], "actor_name": "",
            "task_name": "f"}


def test_dedup_prints_a_line_once_then_the_repeat_count_with_the_hint_once():
    dedup = LogDeduplicator(agg_window_s=5, allow_re="", skip_re="")
    printed = []
    for i in range(10):
        for out in dedup.deduplicate(_batch(1000 + i, f"hello world, id={i}")):
            printed += out["lines"]
    assert printed == ["hello world, id=0"]
    assert dedup.flush() == []  # the window is still open
    flushed = [line for b in dedup.flush(force=True) for line in b["lines"]]
    assert flushed == ["hello world, id=9 [repeated 9x across cluster]" + DEDUP_HINT]
    for i in range(3):
        dedup.deduplicate(_batch(2000 + i, "again"))
    assert [line for b in dedup.flush(force=True) for line in b["lines"]] == ["again [repeated 2x across cluster]"]


def test_dedup_keeps_one_process_lines_and_honours_allow_and_skip():
    dedup = LogDeduplicator(agg_window_s=5, allow_re="^KEEP", skip_re="^DROP")
    out = []
    for _ in range(3):
        for b in dedup.deduplicate({**_batch(7, "same"), "lines": ["same", "KEEP 1", "DROP me"]}):
            out += b["lines"]
    assert out == ["same", "KEEP 1"] * 3
    assert dedup.flush(force=True) == []


def test_prefixes_name_the_actor_or_task_and_other_nodes():
    assert line_prefix({**_batch(5, "x"), "actor_name": "Acc(7)"}, "127.0.0.1") == "(Acc(7) pid=5)"
    assert line_prefix(_batch(5, "x", ip="127.0.0.2"), "127.0.0.1") == "(f pid=5, ip=127.0.0.2)"
    assert line_prefix({**_batch(5, "x"), "task_name": ""}, "127.0.0.1") == "(pid=5)"
    assert line_prefix({**_batch("raylet", "x")}, "127.0.0.1") == "(raylet)"


def test_log_file_names_never_leave_the_log_directory(tmp_path):
    logs = tmp_path / "logs"
    (logs / "events").mkdir(parents=True)
    (logs / "raylet.out").write_text("a\nb\nc\n")
    (logs / "events" / "event_GCS.log").write_text("e\n")
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path / "secret", logs / "escape.log")
    assert log_files.resolve(str(logs), "raylet.out") == str((logs / "raylet.out").resolve())
    assert log_files.resolve(str(logs), "events/event_GCS.log").endswith("event_GCS.log")
    for bad, words in [("../secret", "'..'"), ("events/../../secret", "'..'"), ("/etc/passwd", "absolute"),
                       ("escape.log", "outside"), ("", "No log file name"), ("a\0b", "NUL")]:
        with pytest.raises(log_files.BadLogFileName, match=words):
            log_files.resolve(str(logs), bad)
    with pytest.raises(log_files.LogFileNotFound):
        log_files.resolve(str(logs), "missing.out")
    assert log_files.tail(str(logs / "raylet.out"), 2)[0] == b"b\nc\n"
    assert log_files.tail(str(logs / "raylet.out"), -1)[0] == b"a\nb\nc\n"
    # A task's part of a worker's file: the byte range its task events name, its last lines within it.
    assert log_files.tail(str(logs / "raylet.out"), -1, 2, 4) == (b"b\n", 4)
    assert log_files.tail(str(logs / "raylet.out"), 1, 0, 4)[0] == b"b\n"
    assert log_files.tail(str(logs / "raylet.out"), 5, 4)[0] == b"c\n"
    assert log_files.tail(str(logs / "raylet.out"), 5, 4, 999)[0] == b"c\n"
    assert log_files.categorize(log_files.list_files(str(logs))) == {
        "internal": ["escape.log", "events/event_GCS.log"], "raylet": ["raylet.out"]}


def test_user_metric_errors_are_rays():
    with pytest.raises(TypeError, match="tag_keys should be a tuple type"):
        Counter("c", tag_keys=["a"])
    with pytest.raises(ValueError, match="Empty name"):
        Gauge("")
    c = Counter("req_count", "requests", tag_keys=("route", "code"))
    with pytest.raises(ValueError, match=r"Missing value for tag key\(s\): code\."):
        c.inc(1, {"route": "/"})
    with pytest.raises(ValueError, match="value must be >0"):
        c.inc(0, {"route": "/", "code": "200"})
    with pytest.raises(ValueError, match="Unrecognized tag key other"):
        c.set_default_tags({"other": "x"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        c.inc(1, {"route": "/", "code": 200})
    with pytest.raises(ValueError, match="boundaries argument should be provided"):
        Histogram("h")
    with pytest.raises(ValueError, match="Use positive values"):
        Histogram("h", boundaries=[1, 0])
    with pytest.warns(UserWarning, match="Invalid metric name"):
        Gauge("bad-name")
    h = Histogram("lat", "latency", boundaries=[1, 10], tag_keys=("route",)).set_default_tags({"route": "/"})
    assert h.info == {"name": "lat", "description": "latency", "tag_keys": ("route",),
                      "default_tags": {"route": "/"}, "boundaries": [1.0, 10.0]}
    Gauge("g").set(None)  # no-op, as in Ray


def test_pushed_user_metrics_render_as_prometheus_text():
    store = UserMetricsStore()
    store.push({"worker_id": "w1", "ip": "10.0.0.1", "metrics": [
        {"name": "hits", "type": "counter", "description": "hits", "series": [{"tags": {"k": "v"}, "value": 3}]},
        {"name": "lat", "type": "histogram", "description": "lat", "boundaries": [1.0, 10.0],
         "series": [{"tags": {}, "buckets": [1, 2, 0], "sum": 9.5, "count": 3}]},
    ]})
    with pytest.raises(PushError):
        store.push({"worker_id": "w1", "metrics": [{"name": "bad name", "type": "gauge", "series": []}]})
    collector = RayCollector("session_x", is_head=False)
    collector.user = store.processes()
    text = render(collector).decode()
    assert "# TYPE ray_hits_total counter" in text and "# TYPE ray_hits gauge" in text  # + Ray's legacy gauge
    families = list(text_string_to_metric_families(text))
    samples = {(s.name, s.labels.get("le")): s.value for f in families for s in f.samples}
    assert samples[("ray_hits_total", None)] == 3
    assert samples[("ray_lat_bucket", "1.0")] == 1 and samples[("ray_lat_bucket", "10.0")] == 3
    assert samples[("ray_lat_bucket", "+Inf")] == 3 and samples[("ray_lat_sum", None)] == 9.5
    label_sets = [s.labels for f in families for s in f.samples if s.name == "ray_hits_total"]
    assert label_sets == [{"k": "v", "Component": "core_worker", "NodeAddress": "10.0.0.1",
                           "SessionName": "session_x", "WorkerId": "w1"}]
