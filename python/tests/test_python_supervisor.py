"""The rules of examples/python-supervisor.py on curves made here: what each rule writes, when it
stays quiet, and the hold a human's write puts on its key. (The process test
tests/daemon/python_supervisor_test.sh runs it against a real fleet.)"""

import importlib.util
import os

import pytest

PATH = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python-supervisor.py")
spec = importlib.util.spec_from_file_location("python_supervisor", PATH)
sup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sup)

LR, CLIP, STOP = sup.LEARNING_RATE, sup.GRAD_CLIP_MAX, sup.EARLY_STOP


def train(step, grad_norm=1.0, revision=1):
    return {"step": step, "flags": 0, "loss": 0.5, "grad_norm": grad_norm, "val_loss": None,
            "learning_rate": 0.1, "config_revision": revision}


def evaluation(step, val_loss, revision=1):
    return {"step": step, "flags": sup.EVALUATION, "loss": None, "grad_norm": None,
            "val_loss": val_loss, "learning_rate": None, "config_revision": revision}


def decide(points, values=None, memory=None, **rules):
    values = {LR: 0.1} if values is None else values
    return sup.decide(points, values, sup.Rules(**rules), memory or sup.Memory())


def test_a_plateau_halves_the_rate_once_per_new_evaluation():
    memory = sup.Memory()
    points = [train(10), evaluation(10, 0.70000), train(20), evaluation(20, 0.70005)]
    d = decide(points, memory=memory)
    assert d.writes == {LR: 0.05}
    assert d.reasons[0].startswith("plateau: val_loss 0.7 -> 0.70005 at step 20")
    assert decide(points, memory=memory).writes == {}  # no new evaluation since
    points += [train(30), evaluation(30, 0.6)]
    assert decide(points, memory=memory).writes == {}  # it moved
    points += [train(40), evaluation(40, 0.6)]
    assert decide(points, memory=memory).writes == {LR: 0.05}


def test_a_rate_the_config_does_not_hold_is_the_trainers():
    points = [train(10, 50.0)]
    points[0]["learning_rate"] = 0.2
    assert decide(points, {}).writes == {LR: 0.05, CLIP: 0.5}
    points[0]["learning_rate"] = None  # unknown: the clip alone
    assert decide(points, {}).writes == {CLIP: 0.5}


def test_the_rate_stays_at_or_above_min_lr():
    points = [evaluation(10, 0.7), evaluation(20, 0.7)]
    assert decide(points, {LR: 3e-6}, min_lr=2e-6).writes == {LR: 2e-6}
    assert decide(points, {LR: 2e-6}, min_lr=2e-6).writes == {}


def test_an_explosion_cuts_the_rate_and_clips_then_cools_down():
    memory = sup.Memory()
    d = decide([train(10, 50.0)], memory=memory)
    assert d.writes == {LR: 0.025, CLIP: 0.5} and d.explosion_at == 10
    assert "grad_norm 50 > 10 at step 10" in d.reasons[0]
    # Clipping already tighter stays; a norm at the threshold is no spike.
    assert decide([train(10, 50.0)], {LR: 0.1, CLIP: 0.2}).writes == {LR: 0.025}
    assert decide([train(10, 10.0)]).writes == {}
    # After an accepted reaction (the round sets quiet_until_step), spikes wait out the cooldown.
    memory.quiet_until_step = 10 + 100
    assert decide([train(60, 50.0)], memory=memory).writes == {}
    assert decide([train(110, 50.0)], memory=memory).writes[LR] == 0.025


def test_the_lower_rate_wins_when_two_rules_fire():
    d = decide([evaluation(10, 0.7), evaluation(20, 0.7), train(21, 99.0)])
    assert d.writes[LR] == pytest.approx(0.025) and len(d.reasons) == 2


def test_divergence_stops_the_job_once():
    d = decide([train(10), evaluation(10, 9.0)])
    assert d.writes == {STOP: True} and d.reasons[0].startswith("divergence: val_loss 9 > 5")
    assert decide([train(10), evaluation(10, 9.0)], {LR: 0.1, STOP: True}).writes == {}
    assert decide([train(10), evaluation(10, 4.0)]).writes == {}


class FakeLog:
    """config_log() in pages, as the coordinator serves it."""

    def __init__(self, entries):
        self.entries = entries

    def config_log(self, job, after=0, limit=100):
        return [e for e in self.entries if e["seq"] > after][:limit]


def write(seq, actor, revision, path=LR, accepted=True):
    return {"seq": seq, "kind": "write", "actor": actor, "revision": revision, "path": path,
            "accepted": accepted}


def test_a_humans_write_holds_its_key_for_the_grace():
    log = FakeLog([write(1, "api", 1), write(2, "human:ana", 2),
                   write(3, "policy:other", 3, CLIP), write(4, "policy:other", 4, accepted=False)])
    rules, memory = sup.Rules(human_grace_steps=100), sup.Memory()
    # Not yet applied by the trainer: held until its first step with revision 2.
    held = sup.human_holds(log, "j", [train(10, revision=1)], rules, memory)
    assert held == {LR: "human:ana's write of revision 2 (until its first step)"}
    points = [train(10, revision=1), train(20, revision=2), train(119, revision=3)]
    held = sup.human_holds(log, "j", points, rules, memory)
    assert held == {LR: "human:ana's write of revision 2 (until step 120)"}
    assert sup.human_holds(log, "j", points + [train(120, revision=3)], rules, memory) == {}
    assert memory.log_cursor == 4
    # A later accepted write by anyone else ends the hold.
    log.entries.append(write(5, "policy:other", 5))
    assert sup.human_holds(log, "j", [train(10, revision=1)], rules, memory) == {}
