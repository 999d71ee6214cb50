#!/usr/bin/python3
"""Writes early_stopping.json: the epoch at which Keras' EarlyStopping stops, for a few dozen
metric sequences and parameter sets.

Keras is not a Debian package, so its rules are restated here from its published source and each
one cites where it is written:

  K3  keras-team/keras, keras/src/callbacks/early_stopping.py at commit
      9a97f390775f015cc75d3898c5a0cf8f5a551293 (Keras 3: `keras.callbacks.EarlyStopping`, which is
      also `tf.keras.callbacks.EarlyStopping` from TensorFlow 2.16 on). Line numbers are that
      file's.
  TFK keras-team/tf-keras, tf_keras/callbacks.py at commit
      8ec67edd16c6a195566b3f0c17a577afeb889ebc (Keras 2, `tf.keras` up to TensorFlow 2.15), class
      EarlyStopping, methods on_train_begin, on_epoch_end and _is_improvement.

The reference is K3. TFK differs in one rule only (the starting best, see keras_stop below); the
generator reports which cases TFK would decide differently, and those are all cases whose first
watched value is not finite.

Standard library only. Run from the repository root:
    /usr/bin/python3 tests/golden/make_early_stopping.py
"""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path

OUT = Path(__file__).with_name("early_stopping.json")


def float32(x: float) -> float:
    """x rounded to the nearest float32 (struct packs with round-to-nearest-even)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def keras_stop(values, params, *, in_float32=False, tf_keras=False):
    """Runs EarlyStopping.on_epoch_end over `values` (epoch i sees values[i]).

    Returns (stopped_epoch, best, wait) at the first epoch that sets stop_training, or
    (None, best, wait) after the last epoch when none does.
    """
    mode = params["mode"]
    patience = params["patience"]
    baseline = params["baseline"]
    start_from_epoch = params["start_from_epoch"]
    # K3 L85: min_delta is taken as abs(min_delta).
    min_delta = abs(params["min_delta"])
    # K3 L102-105 (_set_monitor_op): mode "min" compares with ops.less, "max" with ops.greater.
    # K3 L137-138: for ops.less, min_delta is negated, so that `current - min_delta` below is
    # current + |min_delta| in min mode and current - |min_delta| in max mode.
    if mode == "min":
        min_delta = -min_delta

    def monitor_op(a, b):
        # K3 ops.less / ops.greater are strict; any comparison with NaN is False. Keras 3 turns
        # both operands into backend tensors first (float32 for a Python float by default), so
        # the cases are also run with both operands rounded to float32 and must agree.
        if in_float32:
            a, b = float32(a), float32(b)
        return a < b if mode == "min" else a > b

    def is_improvement(current, reference):
        # K3 L210-213: a missing reference (None) is always improved on; otherwise
        # monitor_op(current - min_delta, reference). The subtraction is Python's, in double.
        if reference is None:
            return True
        return monitor_op(current - min_delta, reference)

    # K3 L140-146 (on_train_begin): wait = 0 and best = None.
    # TFK on_train_begin: best = +inf for np.less, -inf for np.greater instead, which any finite
    # value improves on but NaN does not (and +inf, in min mode, does not either).
    wait = 0
    best = (math.inf if mode == "min" else -math.inf) if tf_keras else None
    for epoch, current in enumerate(values):
        # K3 L153-156: an epoch without the value, or one before start_from_epoch, changes
        # nothing (the epoch index still counts from the first epoch of training).
        if current is None or epoch < start_from_epoch:
            continue
        # K3 L157-161, L166-168, L193-200: restore_best_weights only decides which weights are
        # kept; it never changes when training stops.
        # K3 L163: every watched epoch first counts towards the wait.
        wait += 1
        # K3 L164-165: an improvement on the best so far becomes the best ...
        if is_improvement(current, best):
            best = current
            # K3 L171-174: ... and restarts the wait only if it also improves on the baseline
            # (or no baseline is set).
            if baseline is None or is_improvement(current, baseline):
                wait = 0
            # K3 L175: an improving epoch never stops training, whatever the wait.
            continue
        # K3 L177-180: otherwise stop once wait >= patience, never at epoch 0.
        if wait >= patience and epoch > 0:
            return epoch, best, wait
    return None, best, wait


def case(name, values, *, monitor="val_loss", mode="min", patience=0, min_delta=0.0,
         baseline=None, start_from_epoch=0, restore_best_weights=False):
    return {
        "name": name,
        "monitor": monitor,
        "params": {
            "mode": mode,
            "patience": patience,
            "min_delta": min_delta,
            "baseline": baseline,
            "start_from_epoch": start_from_epoch,
            "restore_best_weights": restore_best_weights,
        },
        "values": values,
    }


def noisy_curve(seed, n, *, rising=False):
    """A training curve with noise and plateaus (exact repeats). Values are multiples of 2^-10
    below 4, exact in float32 too, so no comparison depends on the precision it is made in."""
    rng = random.Random(seed)
    out = []
    for t in range(n):
        if out and rng.random() < 0.25:
            out.append(out[-1])
            continue
        level = 0.4 + 1.6 * math.exp(-t / 8.0) + rng.uniform(-0.06, 0.06)
        out.append(round(level * 1024) / 1024)
    return [1.0 - v / 4 for v in out] if rising else out


NAN, INF = math.nan, math.inf


def cases():
    c = [
        # Patience and plateaus.
        case("decreasing_never_stops", [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]),
        case("patience0_first_stall", [1.0, 0.9, 0.95, 0.8]),
        case("patience0_equal_value_is_no_improvement", [1.0, 1.0, 0.5]),
        case("patience1_plateau", [1.0, 0.9, 0.9, 0.9, 0.8], patience=1),
        case("patience2_stall_then_stop", [1.0, 0.9, 0.8, 0.85, 0.82, 0.7], patience=2),
        case("patience2_improvement_resets_wait", [1.0, 0.9, 0.95, 0.85, 0.86, 0.87, 0.88],
             patience=2),
        case("patience3_long_plateau", [2.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.4], patience=3),
        case("patience5_never_reached", [1.0, 1.1, 1.2, 1.3, 1.4, 0.9, 1.0], patience=5),
        case("patience5_reached_on_last", [1.0, 1.1, 1.2, 1.3, 1.4, 1.5], patience=5),
        case("single_value", [0.5], patience=0),
        # min_delta, with dyadic values so that ties are exact.
        case("min_delta_tie_is_no_improvement", [1.0, 0.75, 0.5], min_delta=0.25, patience=0),
        case("min_delta_exceeded_is_improvement", [1.0, 0.625, 0.5], min_delta=0.25),
        case("min_delta_small_gains_do_not_count", [1.0, 0.9375, 0.875, 0.8125, 0.75],
             min_delta=0.125, patience=2),
        case("min_delta_best_only_moves_on_improvement",
             [1.0, 0.9375, 0.8125, 0.6875, 0.625, 0.5625, 0.5625, 0.5], min_delta=0.125,
             patience=3),
        case("max_min_delta_tie_is_no_improvement", [0.5, 0.75, 1.0], monitor="val_accuracy",
             mode="max", min_delta=0.25),
        case("max_min_delta_exceeded", [0.5, 0.875, 1.0, 1.0], monitor="val_accuracy",
             mode="max", min_delta=0.25, patience=1),
        # Mode max.
        case("max_accuracy_plateau", [0.5, 0.6, 0.6, 0.59, 0.7], monitor="val_accuracy",
             mode="max", patience=2),
        case("max_accuracy_rising_never_stops", [0.1, 0.2, 0.3, 0.4], monitor="val_accuracy",
             mode="max", patience=0),
        case("max_falling_stops", [0.9, 0.8, 0.7, 0.6], monitor="val_accuracy", mode="max",
             patience=1),
        # Baseline.
        case("baseline_never_beaten_improving_never_stops", [0.9, 0.8, 0.7, 0.6],
             baseline=0.5, patience=1),
        case("baseline_never_beaten_stall_stops", [0.9, 0.8, 0.7, 0.75], baseline=0.5,
             patience=2),
        case("baseline_not_beaten_stops_at_first_stall", [0.9, 0.95], baseline=0.5, patience=2),
        case("baseline_beaten_resets_wait", [0.9, 0.4, 0.45, 0.46], baseline=0.5, patience=2),
        case("baseline_beaten_late", [0.9, 0.95, 0.4, 0.41, 0.42, 0.43], baseline=0.5,
             patience=3),
        case("baseline_tie_with_min_delta_is_not_beaten", [1.0, 0.5, 0.5], baseline=0.75,
             min_delta=0.25, patience=1),
        case("baseline_max_mode", [0.5, 0.6, 0.7, 0.65, 0.95, 0.9, 0.9],
             monitor="val_accuracy", mode="max", baseline=0.8, patience=2),
        case("baseline_beaten_at_first_epoch", [0.25, 0.3, 0.3], baseline=0.5, patience=1),
        # start_from_epoch.
        case("start_from_epoch_ignores_warmup", [1.0, 2.0, 3.0, 1.5, 1.4, 1.45], patience=0,
             start_from_epoch=3),
        case("start_from_epoch_beyond_the_run", [1.0, 1.0, 1.0, 1.0], start_from_epoch=10),
        case("start_from_epoch_first_watched_epoch_sets_best", [0.1, 0.1, 5.0, 5.0],
             patience=0, start_from_epoch=2),
        case("start_from_epoch_with_patience", [0.5, 0.4, 0.9, 0.8, 0.85, 0.86, 0.87],
             patience=2, start_from_epoch=2),
        case("start_from_epoch_with_baseline", [0.1, 0.9, 0.8, 0.85, 0.86], patience=1,
             baseline=0.5, start_from_epoch=1),
        # Non-finite values: no comparison with NaN is true (K3 L213).
        case("nan_midway_is_no_improvement", [1.0, NAN, 0.9, NAN, NAN], patience=1),
        case("nan_first_becomes_the_best", [NAN, 1.0, 0.5, 0.25], patience=1),
        case("nan_first_patience0", [NAN, 1.0, 1.0], patience=0),
        case("nan_during_warmup_is_ignored", [NAN, NAN, 1.0, 0.9, 0.95], patience=0,
             start_from_epoch=2),
        case("inf_first_min_mode", [INF, 5.0, 4.0, 4.0], patience=0),
        case("minus_inf_is_unbeatable", [1.0, -INF, 0.5, 0.25, 0.125], patience=2),
        case("max_nan_first", [NAN, 0.5, 0.6], monitor="val_accuracy", mode="max", patience=1),
        # The training loss: every record is one epoch.
        case("loss_records_plateau", [2.0, 1.5, 1.25, 1.25, 1.25, 1.0], monitor="loss",
             patience=1),
        case("loss_records_min_delta", [2.0, 1.875, 1.75, 1.625], monitor="loss",
             min_delta=0.125, patience=1),
        # restore_best_weights changes nothing about when training stops (K3 L157-161).
        case("restore_best_weights_same_stop", [1.0, 0.9, 0.8, 0.85, 0.82, 0.7], patience=2,
             restore_best_weights=True),
    ]
    # Longer noisy curves.
    for seed, (patience, min_delta, start) in enumerate(
            [(3, 0.0, 0), (5, 1 / 64, 0), (2, 1 / 128, 4), (8, 0.0, 2)]):
        c.append(case(f"noisy_loss_seed{seed}", noisy_curve(seed, 60), patience=patience,
                      min_delta=min_delta, start_from_epoch=start))
    for seed, (patience, baseline) in enumerate([(4, None), (3, 0.85)], start=10):
        c.append(case(f"noisy_accuracy_seed{seed}", noisy_curve(seed, 60, rising=True),
                      monitor="val_accuracy", mode="max", patience=patience, baseline=baseline))
    return c


def json_number(x):
    """JSON has no NaN or infinity: those are written as the strings "nan", "inf", "-inf"."""
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def main():
    out_cases = []
    tf_keras_differs = []
    for c in cases():
        stopped, best, wait = keras_stop(c["values"], c["params"])
        if keras_stop(c["values"], c["params"], in_float32=True) != (stopped, best, wait):
            raise SystemExit(f"{c['name']}: the outcome depends on the float precision")
        if keras_stop(c["values"], c["params"], tf_keras=True)[0] != stopped:
            watched = c["values"][c["params"]["start_from_epoch"]:]
            if watched and math.isfinite(watched[0]):
                raise SystemExit(f"{c['name']}: tf-keras differs with a finite first value")
            tf_keras_differs.append(c["name"])
        c["values"] = [json_number(v) for v in c["values"]]
        c["stopped_epoch"] = stopped
        c["best_at_stop"] = json_number(best) if stopped is not None else None
        c["wait_at_stop"] = wait if stopped is not None else None
        out_cases.append(c)
    doc = {
        "source": "keras.callbacks.EarlyStopping as written in keras-team/keras "
                  "keras/src/callbacks/early_stopping.py at 9a97f390775f015cc75d3898c5a0cf8f5a551293 "
                  "(restated in tests/golden/make_early_stopping.py, which cites the lines)",
        "meaning": "for each case: EarlyStopping(monitor, **params) sees values[i] at the end of "
                   "epoch i; stopped_epoch is the first epoch at which it sets stop_training (null: "
                   "never), best_at_stop and wait_at_stop its best and wait then. Non-finite "
                   "numbers are the strings nan, inf, -inf",
        "tf_keras_differs": tf_keras_differs,
        "cases": out_cases,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    stops = sum(c["stopped_epoch"] is not None for c in out_cases)
    print(f"{OUT}: {len(out_cases)} cases, {stops} stop; tf-keras differs on "
          f"{', '.join(tf_keras_differs) or 'none'}")


if __name__ == "__main__":
    main()
