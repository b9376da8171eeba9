"""Review 27: what a long-running service's review found.

- Ctrl-C while ``db.transaction()`` waited for the write lock: the C call
  had begun the transaction by the time the KeyboardInterrupt surfaced, but
  Python had not yet taken the handle, so nothing ever rolled it back and
  every writer of the file (this process or another) got BusyError until
  the process ended. Handles a C call makes are now owned from before the
  call (``_ffi.OutHandle``) and ended on any exception.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import obj


def test_ctrl_c_while_waiting_for_the_write_lock_leaves_no_transaction(tmp_path):
    path = str(tmp_path / "k.obj")
    db = obj.Db(path, busy_timeout_ms=3000)
    db.insert("c", {"a": 1})
    holding = threading.Event()

    def holder():
        with db.transaction() as tx:
            tx.insert("c", {"a": 2})
            holding.set()
            time.sleep(0.6)

    # Python raises KeyboardInterrupt only where SIGINT was not ignored at
    # its start (a shell ignores it for background jobs): install it here.
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for _ in range(3):
            h = threading.Thread(target=holder)
            h.start()
            assert holding.wait(10), "the write lock stayed taken"
            # Sent while this thread waits in C for the lock: the interrupt
            # surfaces once the lock is granted, as the call returns.
            timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            try:
                tx = db.transaction()
            except KeyboardInterrupt:
                pass
            else:  # (the interrupt came late: not the case under test)
                tx.rollback()
            finally:
                timer.cancel()
                h.join()
                holding.clear()
            time.sleep(0.1)  # (a late signal lands here, not in the checks below)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, old_handler)

    # The write lock is free: for this handle, another one and another process.
    fast = obj.Db(path, busy_timeout_ms=100)
    fast.insert("c", {"a": 3})
    fast.close()
    db.insert("c", {"a": 4})
    assert db.checkpoint().complete
    code = "import obj, sys; obj.Db(sys.argv[1], busy_timeout_ms=100).insert('c', {'a': 5})"
    subprocess.run([sys.executable, "-c", code, path], check=True, timeout=60)
    assert db.count("c") == 3 + 3 + 1  # 1, the holder's three 2s, 3, 4, 5
    db.close()
