"""A message that lets go of a ref waits for every add_borrower registration sent before it, and only those."""

from __future__ import annotations

import asyncio

from ray.core_worker.reference_counter import RegistrationOrder


def test_a_barrier_waits_for_earlier_registrations_only():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        order = RegistrationOrder()
        assert order.barrier(loop) is None  # nothing in flight: let go at once
        first, second = order.sent(loop), order.sent(loop)
        behind_both = order.barrier(loop)
        third = order.sent(loop)
        behind_all = order.barrier(loop)

        second.set_result(None)  # acknowledged out of order: the first still holds both barriers
        await asyncio.sleep(0)
        assert not behind_both.done() and not behind_all.done() and order.unacknowledged == 2
        first.set_result(None)
        await asyncio.sleep(0)
        assert behind_both.done() and not behind_all.done()  # the third came after it
        third.set_result(None)  # an owner that died answers nothing: the reply is dropped, the ack is set
        await asyncio.sleep(0)
        assert behind_all.done() and order.unacknowledged == 0 and order.barrier(loop) is None

    asyncio.run(scenario())


def test_ten_thousand_pending_registrations_cost_one_barrier_each():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        order = RegistrationOrder()
        acks = [order.sent(loop) for _ in range(10_000)]
        barriers = [order.barrier(loop) for _ in range(10_000)]
        # Each barrier is one entry, not a callback on every pending acknowledgement (the old code added
        # 10,000 callbacks per message: 10^8 here).
        assert all(len(ack._callbacks) == 1 for ack in acks)
        for ack in acks:
            ack.set_result(None)
        await asyncio.sleep(0)
        assert all(b.done() for b in barriers)

    asyncio.run(scenario())
