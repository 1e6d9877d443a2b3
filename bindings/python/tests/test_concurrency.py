# SPDX-License-Identifier: MIT
"""Threads: 8 Python threads calling forward on one model get exactly the serial results; close() waits for the calls
in flight, and later calls fail with the library's "model is closed" status; forward releases the GIL."""
import threading

import numpy as np

import pimoe
from conftest import basic_options, random_input

THREADS = 8
CALLS = 25


def test_eight_threads_on_one_model_match_serial():
    with pimoe.Model(basic_options()) as m:
        # inputs of 1 to 3 tokens; the serial results first
        inputs = [random_input((1 + i % 3, m.hidden), 100 + i) for i in range(THREADS * CALLS)]
        expected = [m.forward_routing(x) for x in inputs]
        m.reset_stats()
        got = [None] * len(inputs)
        failures = []
        start = threading.Barrier(THREADS)

        def work(thread):
            try:
                start.wait()
                for c in range(CALLS):
                    i = c * THREADS + thread  # interleaved: every thread sees every token count
                    if i % 2 == 0:
                        got[i] = m.forward_routing(inputs[i])
                    else:  # into a caller's buffer
                        out = np.empty_like(inputs[i])
                        got[i] = m.forward(inputs[i], out=out)
                    m.stats()  # concurrent reads of the statistics too
            except BaseException as e:  # reported below, with the thread
                failures.append((thread, e))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        for i, (want, have) in enumerate(zip(expected, got)):
            if i % 2 == 0:
                assert have.output.tobytes() == want.output.tobytes(), f"call {i}"
                np.testing.assert_array_equal(have.expert_ids, want.expert_ids, err_msg=f"call {i}")
                np.testing.assert_array_equal(have.weights, want.weights, err_msg=f"call {i}")
            else:
                assert have.tobytes() == want.output.tobytes(), f"call {i}"
        assert m.stats().forward_calls == THREADS * CALLS


def test_close_waits_for_running_calls_and_later_calls_fail():
    m = pimoe.Model(basic_options())
    x = random_input((4, 64), 1)
    completed = 0
    lock = threading.Lock()
    running = threading.Barrier(5)
    unexpected = []

    def work():
        nonlocal completed
        y = np.empty_like(x)
        running.wait()
        try:
            while True:
                m.forward(x, out=y)
                with lock:
                    completed += 1
        except pimoe.Error as e:
            if e.status != pimoe.Status.NULL_POINTER or e.message != "model is closed":
                unexpected.append(e)
        except BaseException as e:
            unexpected.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    running.wait()
    while True:
        with lock:
            if completed >= 20:
                break
    m.close()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert not unexpected, unexpected
    assert m.closed


def test_forward_releases_the_gil_during_the_c_call():
    """With a switch interval of 10 s, a thread that holds the GIL keeps it: the main thread below can run while the
    worker is inside forward only if forward released it. The worker records the main thread's counter after each
    call; it must have moved."""
    import sys
    import time

    with pimoe.Model(hidden=256, num_experts=4, top_k=2, intermediate=1024, backend="cpu", threads=1) as m:
        x = random_input((16, 256), 9)
        counter = 0
        seen = []
        done = threading.Event()

        def work():
            for _ in range(20):
                m.forward(x)
                seen.append(counter)
            done.set()

        interval = sys.getswitchinterval()
        sys.setswitchinterval(10.0)
        try:
            worker = threading.Thread(target=work)
            worker.start()
            while not done.is_set():
                counter += 1
                time.sleep(0)  # releases the GIL, so that the worker can take it back after each call
            worker.join()
        finally:
            sys.setswitchinterval(interval)
        assert seen[-1] > seen[0], f"the main thread never ran during the worker's calls: {seen}"
