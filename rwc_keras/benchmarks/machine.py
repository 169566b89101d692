"""The machine a benchmark ran on, for its header: the CPU, the vector instructions it
offers, and TensorFlow's devices."""

import platform

CPUINFO = "/proc/cpuinfo"
# The instruction sets that change TensorFlow's CPU kernels, as /proc/cpuinfo names them.
VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16",
                "amx_tile")


def _cpuinfo_field(name):
    """The first value of ``name`` in /proc/cpuinfo (Linux), or None."""
    try:
        with open(CPUINFO) as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model():
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def cpu_flags():
    """Which of `VECTOR_FLAGS` the CPU reports, upper case ("unknown" off Linux): stated as
    measured rather than assumed from the CPU's name."""
    found = _cpuinfo_field("flags")
    if found is None:
        return "unknown"
    return " ".join(flag.upper() for flag in VECTOR_FLAGS if flag in found.split()) or "none"


def device_names():
    """TensorFlow's logical devices, GPUs with their model name."""
    # Imported here: the rest of this module serves benchmarks that run without TensorFlow.
    import tensorflow as tf  # noqa: PLC0415
    names = [device.name for device in tf.config.list_logical_devices()]
    for gpu in tf.config.list_physical_devices("GPU"):
        names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
    return names
