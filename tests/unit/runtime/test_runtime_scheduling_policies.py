"""Ray's scheduling policies as pure functions (raylet/scheduling/policy.py): hybrid with the spread threshold,
critical-resource scores, top-k and GPU avoidance; spread's round-robin; node affinity hard, soft and its
private flags. No processes: nodes are plain views."""

from __future__ import annotations

import random

from ray._common.resources import ResourceSet
from ray.raylet.scheduling import policy
from ray.raylet.scheduling.policy import HybridOptions

CPU1 = ResourceSet({"CPU": 1})


def _node(node_id: str, total: dict, available: dict | None = None, alive: bool = True) -> policy.NodeView:
    return policy.NodeView(node_id, ResourceSet(total), ResourceSet(total if available is None else available),
                           f"{node_id}:1", alive)


def test_critical_utilization_is_the_busiest_of_cpu_memory_and_object_store_only():
    total = ResourceSet({"CPU": 4, "memory": 100, "object_store_memory": 100, "GPU": 2, "custom": 1})
    assert policy.critical_utilization(total, ResourceSet({"CPU": 3, "memory": 100, "object_store_memory": 100})) \
        == 0.25
    assert policy.critical_utilization(total, ResourceSet({"CPU": 4, "memory": 100, "object_store_memory": 40})) \
        == 0.6
    # GPUs and custom resources in use do not count.
    assert policy.critical_utilization(total, ResourceSet({"CPU": 4, "memory": 100, "object_store_memory": 100})) \
        == 0.0
    assert policy.critical_utilization(ResourceSet({"custom": 1}), ResourceSet()) == 0.0


def test_hybrid_packs_the_local_node_until_its_utilization_reaches_the_spread_threshold():
    remote = _node("b", {"CPU": 4})
    for free, expected in ((4, "a"), (3, "a"), (2, "b"), (1, "b")):  # 0, 25 %: local; 50 %, 75 %: elsewhere
        local = _node("a", {"CPU": 4}, {"CPU": free})
        decision = policy.hybrid(CPU1, [local, remote], "a")
        assert (decision.node_id, decision.available_now) == (expected, True), free
    # A higher threshold keeps more work local.
    local = _node("a", {"CPU": 4}, {"CPU": 2})
    assert policy.hybrid(CPU1, [local, remote], "a", HybridOptions(spread_threshold=0.8)).node_id == "a"


def test_hybrid_does_not_score_gpus_or_custom_resources():
    local = _node("a", {"CPU": 4, "GPU": 2, "custom": 2}, {"CPU": 4, "GPU": 0, "custom": 0})
    remote = _node("b", {"CPU": 4})
    options = HybridOptions(avoid_gpu_nodes=False)
    assert policy.hybrid(CPU1, [local, remote], "a", options).node_id == "a"


def test_hybrid_picks_among_the_k_least_loaded_nodes_at_random():
    # 10 nodes: k = max(1, int(10 * 0.2)) = 2. The local node is busy (75 %), the others' scores differ.
    nodes = [_node("local", {"CPU": 4}, {"CPU": 1})]
    nodes += [_node(f"n{i}", {"CPU": 10}, {"CPU": 10 - i}) for i in range(9)]  # n0..n4 under 50 %: score 0
    rng = random.Random(7)
    picks = {policy.hybrid(CPU1, nodes, "local", rng=rng).node_id for _ in range(200)}
    assert picks == {"n0", "n1"}  # the two lowest scores (ties broken by node id)
    only_one = HybridOptions(top_k_fraction=0.0, top_k_absolute=1)
    assert {policy.hybrid(CPU1, nodes, "local", only_one, rng=rng).node_id for _ in range(50)} == {"n0"}
    wider = HybridOptions(top_k_fraction=0.5)  # k = 5: every node still scored 0
    assert {policy.hybrid(CPU1, nodes, "local", wider, rng=rng).node_id for _ in range(400)} == \
        {"n0", "n1", "n2", "n3", "n4"}


def test_hybrid_queues_where_it_fits_once_nothing_is_free_and_reports_infeasible():
    full_local = _node("a", {"CPU": 2}, {"CPU": 0})
    fuller_remote = _node("b", {"CPU": 2}, {"CPU": 0})
    decision = policy.hybrid(CPU1, [full_local, fuller_remote], "a")
    assert (decision.node_id, decision.available_now) == ("a", False)
    # The local node is not feasible: the task queues at the least loaded node that is.
    small_local = _node("a", {"CPU": 1}, {"CPU": 0})
    big_busy = [_node("b", {"CPU": 4}, {"CPU": 0}), _node("c", {"CPU": 4}, {"CPU": 1})]
    assert policy.hybrid(ResourceSet({"CPU": 2}), [small_local, *big_busy], "a").node_id == "c"
    assert policy.hybrid(ResourceSet({"GPU": 1}), [full_local], "a") == policy.Decision(None)
    special = _node("s", {"CPU": 1, "bob": 5})
    assert policy.hybrid(ResourceSet({"bob": 1}), [full_local, special], "a").node_id == "s"


def test_hybrid_keeps_cpu_only_work_off_gpu_nodes_while_a_cpu_node_has_room():
    gpu_local = _node("a", {"CPU": 4, "GPU": 1})
    cpu_remote = _node("b", {"CPU": 4})
    assert policy.hybrid(CPU1, [gpu_local, cpu_remote], "a").node_id == "b"
    assert policy.hybrid(CPU1, [gpu_local, cpu_remote], "a", HybridOptions(avoid_gpu_nodes=False)).node_id == "a"
    # No CPU-only node with room: a GPU node is used after all; GPU requests go to GPU nodes.
    busy_cpu = _node("b", {"CPU": 4}, {"CPU": 0})
    assert policy.hybrid(CPU1, [gpu_local, busy_cpu], "a").node_id == "a"
    assert policy.hybrid(ResourceSet({"GPU": 1}), [gpu_local, cpu_remote], "b").node_id == "a"


def test_hybrid_skips_dead_nodes_and_can_avoid_the_local_one():
    local, dead = _node("a", {"CPU": 4}), _node("b", {"CPU": 4}, alive=False)
    assert policy.hybrid(CPU1, [local, dead], "a").node_id == "a"
    assert policy.hybrid(CPU1, [local, dead], "a", avoid_local=True).node_id is None
    assert policy.hybrid(CPU1, [local, _node("c", {"CPU": 4})], "a", avoid_local=True).node_id == "c"


def test_spread_round_robins_in_node_id_order_available_nodes_first():
    nodes = [_node(n, {"CPU": 2}) for n in ("c", "a", "b")]
    picks, index = [], 0
    for _ in range(6):
        decision, index = policy.spread(CPU1, nodes, index)
        picks.append(decision.node_id)
    assert picks == ["a", "b", "c", "a", "b", "c"]
    # A busy node is skipped while others are free; with every node busy, feasible ones take turns.
    busy_b = [_node("a", {"CPU": 2}), _node("b", {"CPU": 2}, {"CPU": 0}), _node("c", {"CPU": 2})]
    decision, index = policy.spread(CPU1, busy_b, 1)
    assert (decision.node_id, decision.available_now, index) == ("c", True, 0)
    all_busy = [_node(n, {"CPU": 2}, {"CPU": 0}) for n in ("a", "b", "c")]
    decision, index = policy.spread(CPU1, all_busy, 1)
    assert (decision.node_id, decision.available_now, index) == ("b", False, 2)
    assert policy.spread(CPU1, all_busy, 1, require_available=True)[0].node_id is None


def test_spread_skips_infeasible_and_dead_nodes():
    nodes = [_node("a", {"CPU": 1}), _node("b", {"GPU": 1}), _node("c", {"CPU": 1}, alive=False)]
    picks = set()
    index = 0
    for _ in range(4):
        decision, index = policy.spread(CPU1, nodes, index)
        picks.add(decision.node_id)
    assert picks == {"a"}
    assert policy.spread(ResourceSet({"TPU": 1}), nodes, 0)[0] == policy.Decision(None)


def test_node_affinity_runs_on_its_node_even_when_busy_and_hard_fails_on_a_missing_or_small_node():
    a, b = _node("a", {"CPU": 1}), _node("b", {"CPU": 1}, {"CPU": 0})
    assert policy.node_affinity(CPU1, [a, b], "b", soft=False, preferred_id="a") == policy.Decision("b", False)
    for target, nodes in (("gone", [a, b]), ("b", [a, _node("b", {"CPU": 1}, alive=False)])):
        decision = policy.node_affinity(CPU1, nodes, target, soft=False, preferred_id="a")
        assert decision.node_id is None and decision.unschedulable == policy.UNSCHEDULABLE_NODE_AFFINITY
    too_small = policy.node_affinity(ResourceSet({"CPU": 2}), [a, b], "a", soft=False, preferred_id="a")
    assert too_small.unschedulable == policy.UNSCHEDULABLE_NODE_AFFINITY
    assert policy.UNSCHEDULABLE_NODE_AFFINITY == ("The node specified via NodeAffinitySchedulingStrategy doesn't "
                                                  "exist any more or is infeasible, and soft=False was specified.")


def test_soft_node_affinity_falls_back_to_hybrid_and_the_private_flags_act_on_a_busy_node():
    a, busy_b = _node("a", {"CPU": 1}), _node("b", {"CPU": 1}, {"CPU": 0})
    assert policy.node_affinity(CPU1, [a, busy_b], "gone", soft=True, preferred_id="a") == policy.Decision("a", True)
    # soft: waits for its busy node, unless _spill_on_unavailable.
    assert policy.node_affinity(CPU1, [a, busy_b], "b", soft=True, preferred_id="a").node_id == "b"
    assert policy.node_affinity(CPU1, [a, busy_b], "b", soft=True, preferred_id="a",
                                spill_on_unavailable=True).node_id == "a"
    # hard with _fail_on_unavailable: a busy node fails it at once.
    failed = policy.node_affinity(CPU1, [a, busy_b], "b", soft=False, preferred_id="a", fail_on_unavailable=True)
    assert failed.unschedulable and failed.node_id is None
