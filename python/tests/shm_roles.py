"""Roles a Python process plays in the client tests; run as `python3 shm_roles.py ROLE NAME ...`.

  reader NAME READS        snapshot training/{a,b,c,tag} at least READS times, and on (for up
                           to 30 s) until the values have moved, checking b == 2a,
                           c == a + 1, tag == str(a) in every read
  trainer NAME STEPS       a trainer loop: read the learning rate every step, push telemetry
Prints key=value lines for the test to assert on.
"""

import sys
import time

from trainvisor import shm


def attach(name, read_write=False):
    for _ in range(500):  # the writer may still be creating the block
        try:
            return shm.Block(name, read_write=read_write)
        except shm.ShmError:
            time.sleep(0.01)
    return shm.Block(name, read_write=read_write)


def reader(name, reads):
    block = attach(name)
    snap = block.snapshot([("training/a", -1), ("training/b", -2), ("training/c", 0),
                           ("training/tag", "-1")])
    fresh = violations = distinct = done = 0
    last_a = None
    # The extension reads fast enough to finish READS reads before a writer on a busy machine
    # is scheduled once: a reader that never saw a write would test nothing.
    deadline = time.monotonic() + 30
    while done < reads or (distinct <= 1 and time.monotonic() < deadline):
        done += 1
        ok, (a, b, c, tag) = snap.read()
        fresh += ok
        if b != 2 * a or c != a + 1 or tag != str(a):
            violations += 1
            if violations <= 5:
                print(f"violation a={a} b={b} c={c} tag={tag}")
        if a != last_a:
            distinct += 1
            last_a = a
    print(f"reads={done}\nfresh={fresh}\nviolations={violations}\ndistinct={distinct}")
    return 0 if violations == 0 else 1


def trainer(name, steps):
    block = attach(name, read_write=True)
    lr = block.resolve("training/optimizer/learning_rate", float)
    epochs = block.resolve("training/control/max_epochs", int)
    loss_sum = 0.0
    for step in range(steps):
        rate = lr.get(0.0)
        loss = 1.0 / (step + 1)
        loss_sum += loss
        block.push_telemetry(step=step, epoch=epochs.get(0), loss=loss, learning_rate=rate,
                             flags=shm.FLAG_EVAL if step % 10 == 0 else 0,
                             wall_time_ns=time.time_ns())
    print(f"steps={steps}\nloss_sum={loss_sum:.9f}\nlast_lr={lr.get(0.0)}")
    return 0


if __name__ == "__main__":
    role, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.exit({"reader": reader, "trainer": trainer}[role](name, count))
