"""Timing for the benchmarks: repeated calls after a warm-up, functions taking turns so
that a drifting machine slows them alike, and the seconds of each epoch of a `fit`."""

import time

import keras


def time_calls(fn, repeats, number=1):
    """Seconds per call of ``fn``: one untimed warm-up call, then ``repeats`` timings of
    ``number`` calls each. ``fn`` must wait for its own results (e.g. call ``.numpy()``)."""
    fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        seconds.append((time.perf_counter() - start) / number)
    return seconds


def alternating_milliseconds(functions, repeats, number):
    """ms per call of each of ``functions``, wall and CPU time, one value per repeat.

    After one untimed warm-up call each, the functions take turns within every repeat, each
    running ``number`` times, so that a machine whose speed drifts (other work starting or
    stopping) slows them all alike. CPU time is the process's (all its threads): it counts
    the work done, which other processes on the machine hardly change. Each function must
    wait for its own results (e.g. call ``.numpy()``).

    Returns:
        ``(wall, cpu)``: per function, its list of values.
    """
    for fn in functions:
        fn()
    wall, cpu = [[] for _ in functions], [[] for _ in functions]
    for _ in range(repeats):
        for fn, walls, cpus in zip(functions, wall, cpu):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(number):
                fn()
            walls.append(1000 * (time.perf_counter() - start_wall) / number)
            cpus.append(1000 * (time.process_time() - start_cpu) / number)
    return wall, cpu


class EpochTimer(keras.callbacks.Callback):
    """Seconds of every epoch of a ``fit`` call; listed last, so it includes other callbacks."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        # A GPU runs ahead of Python: reading a variable the last step wrote waits for it.
        self.model.optimizer.iterations.numpy()
        self.seconds.append(time.perf_counter() - self._start)
