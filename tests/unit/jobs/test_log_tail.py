"""Following a job's log file: everything once, in order, multi-byte characters intact, ends with the job."""

import asyncio

from ray.dashboard.modules.job.log_tail import follow_log, last_log_lines


def test_follow_yields_everything_written_before_the_job_finished(tmp_path):
    path = tmp_path / "job.log"
    path.write_bytes(b"first\n")
    state = {"done": False}

    async def scenario():
        async def writer():
            with open(path, "ab") as f:
                for chunk in (b"caf\xc3", b"\xa9\n", b"last\n"):  # a UTF-8 character split across writes
                    await asyncio.sleep(0.05)
                    f.write(chunk)
                    f.flush()
            state["done"] = True

        async def finished():
            return state["done"]

        task = asyncio.create_task(writer())
        chunks = [chunk async for chunk in follow_log(str(path), finished, poll_s=0.01)]
        await task
        return "".join(chunks)

    assert asyncio.run(scenario()) == "first\ncafé\nlast\n"


def test_last_lines_are_bounded(tmp_path):
    path = tmp_path / "job.log"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    assert last_log_lines(str(path)) == "".join(f"line {i}\n" for i in range(90, 100))
    assert last_log_lines(str(path), max_chars=8) == "line 99\n"
    assert last_log_lines(str(tmp_path / "missing.log")) == ""
