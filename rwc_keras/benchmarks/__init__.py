"""Benchmarks of the callback, the backends, one measurement and freezing; each module is a
command (`python -m rwc_keras.benchmarks.<name>`). The library never imports this package."""
