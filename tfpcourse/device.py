"""Start TensorFlow the same way in every notebook: quietly, GPU-ready, with a strategy.

Call :func:`setup` in the first code cell of a notebook, *before* anything else touches
TensorFlow::

    from tfpcourse import device

    strategy = device.setup()

It

1. silences TensorFlow's C++ start-up chatter (oneDNN, CUDA, CPU-feature lines), which otherwise
   lands in the notebook's stderr and makes outputs differ from machine to machine;
2. turns on GPU *memory growth*, so TensorFlow takes GPU memory as it needs it instead of
   grabbing all of it (which must happen before the first operation runs);
3. prints which devices it found (CPU-only is fine for this course, and it says so);
4. returns a :class:`tf.distribute.Strategy`: a ``MirroredStrategy`` over all GPUs when there
   are several, the default (single-device) strategy otherwise.

Mixed precision and XLA auto-clustering are switches, off by default. ``mixed_precision=True``
picks what pays on the hardware found: ``mixed_bfloat16`` on a CPU with bfloat16 units (Intel
AMX or AVX512-BF16: a large bfloat16 matrix product runs several times faster than float32 on
them), ``mixed_float16`` on GPUs (the training loop then scales the loss), and nothing on other
CPUs. Layers then compute in 16 bits and keep float32 variables; the course's networks cast
their outputs to float32, so distributions, log-probabilities and the ELBO stay float32.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tfpcourse._validate import check_bool, check_int

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "PRECISIONS",
    "DeviceReport",
    "cpu_has_bfloat16",
    "filter_tf_noise",
    "install_stderr_filter",
    "quiet_stderr",
    "report",
    "setup",
]

# Lines TensorFlow's C++ runtime writes straight to file descriptor 2 at start-up. They are
# information, not problems, on a CPU-only machine.
# e.g. "I0000 00:00:1795289078.513615    2287 port.cc:153] ..." (the seconds field may be a
# whole epoch timestamp before absl is initialised).
# TensorFlow 2.18 and 2.19 also log in TSL's own format:
# "2026-12-03 15:10:50.744021: E tensorflow/core/util/util.cc:131] ...".
_GLOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d+:\d+:\d+(\.\d+)?\s+\d+\s+\S+:\d+\]\s"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\]\s)"
)
_NOISE_PATTERNS = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(r"^To enable the following instructions:"),
)
_HARMLESS_ERRORS = (
    "failed call to cuInit",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "could not open file to read NUMA node",
    "oneDNN supports DT_INT32 only on platforms with AVX-512",  # a note, not an error
)


def filter_tf_noise(text: str) -> str:
    """Remove TensorFlow's known start-up log lines from ``text`` and keep everything else.

    Informational and warning lines in glog format (``I0000 12:00:00.000 123 file.cc:12] ...``)
    are dropped; error lines are dropped only when they are the well-known, harmless messages
    of a machine without a GPU. Anything unrecognised is kept, so real errors still show.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    kept = []
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if not stripped.strip():
            continue
        if any(p.search(stripped) for p in _NOISE_PATTERNS):
            continue
        if _GLOG_LINE.match(stripped):
            if _severity(stripped) in "IW":
                continue
            if any(msg in stripped for msg in _HARMLESS_ERRORS):
                continue
        kept.append(line if line.endswith("\n") else line + "\n")
    return "".join(kept)


def _severity(line: str) -> str:
    """The severity letter (I, W, E, F) of a log line matched by ``_GLOG_LINE``."""
    return line[0] if line[0] in "IWEF" else line.split(": ", 1)[1][0]


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Capture what is written to file descriptor 2 inside the block and re-emit only what
    :func:`filter_tf_noise` keeps.

    TensorFlow's C++ code writes to the process's stderr directly, bypassing ``sys.stderr``, so
    this redirects the file descriptor itself. Python-level writes to ``sys.stderr`` go through
    unchanged.
    """
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
    except (AttributeError, OSError, ValueError):  # pragma: no cover - exotic hosts
        fd = 2
    try:
        saved = os.dup(fd)
    except OSError:  # pragma: no cover - no real fd 2 (some embedded hosts)
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            with contextlib.suppress(Exception):
                sys.__stderr__.flush()  # type: ignore[union-attr]
            os.dup2(sink.fileno(), fd)
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            leftover = filter_tf_noise(sink.read().decode("utf-8", errors="replace"))
            if leftover:
                sys.stderr.write(leftover)
                sys.stderr.flush()


class _LineFilter:
    """Replace a file descriptor by a pipe; a thread forwards each complete line that
    :func:`filter_tf_noise` keeps to the original descriptor."""

    def __init__(self, fd: int):
        self.fd = fd
        self.original = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self.read_end = read_end
        self.thread = threading.Thread(target=self._pump, name="tf-stderr-filter", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:  # pragma: no cover - descriptor closed under us
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines:
                text = b"\n".join(lines).decode("utf-8", errors="replace") + "\n"
                kept = filter_tf_noise(text)
                if kept:
                    os.write(self.original, kept.encode("utf-8"))
        if pending:
            kept = filter_tf_noise(pending.decode("utf-8", errors="replace"))
            if kept:
                os.write(self.original, kept.encode("utf-8"))


_FILTER: _LineFilter | None = None


def _in_jupyter_kernel() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # pragma: no cover
        return False
    return ip is not None and hasattr(ip, "kernel")


def install_stderr_filter() -> bool:
    """Filter TensorFlow's C++ log lines out of file descriptor 2 for the rest of the process.

    TensorFlow writes some lines lazily, long after start-up (for example oneDNN's notes the
    first time an integer op runs). In a Jupyter kernel, which shows everything written to
    descriptor 2 in the notebook, :func:`setup` installs this filter so those lines never
    reach the notebook. Only complete lines are forwarded, which is why it is not used in a
    terminal, where progress bars write partial lines. Returns ``True`` if a filter is (now)
    installed. Idempotent.
    """
    global _FILTER
    if _FILTER is not None:
        return True
    try:
        _FILTER = _LineFilter(2)
    except OSError:  # pragma: no cover - no usable descriptor 2
        return False
    return True


def _quiet_environment() -> None:
    # Must be set before TensorFlow is imported to have any effect.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class DeviceReport:
    """What :func:`setup` found."""

    tensorflow_version: str
    tfp_version: str
    gpus: tuple[str, ...]
    cpus: tuple[str, ...]
    logical_devices: tuple[str, ...]
    strategy: str
    mixed_precision: str  # the Keras dtype policy: "float32", "mixed_bfloat16" or "mixed_float16"
    xla: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        lines = [f"TensorFlow {self.tensorflow_version}, TensorFlow Probability {self.tfp_version}"]
        if self.gpus:
            lines.append(f"GPUs: {len(self.gpus)} ({', '.join(self.gpus)}), memory growth on")
        else:
            lines.append("GPUs: none. Everything runs on the CPU, which is fine for this course.")
        lines.append(f"Logical devices: {', '.join(self.logical_devices)}")
        lines.append(f"Strategy: {self.strategy}")
        lines.append(
            f"Mixed precision: {_describe_policy(self.mixed_precision)}; "
            f"XLA auto-clustering: {'on' if self.xla else 'off'}"
        )
        lines.extend(self.notes)
        return "\n".join(lines)


def _describe_policy(policy: str) -> str:
    if policy == "float32":
        return "off"
    return f"{policy} ({policy.split('_')[1]} compute, float32 variables)"


PRECISIONS = (False, True, "auto", "bfloat16", "float16")
"""What ``setup(mixed_precision=...)`` accepts: ``False`` (float32), ``True`` or ``"auto"`` (what
pays on this hardware), or a 16-bit type to force."""


def cpu_has_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bfloat16 matrix units (Intel AMX-BF16 or AVX512-BF16), read from
    ``/proc/cpuinfo`` (or from the text ``cpuinfo``). ``False`` where that file does not exist."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def _choose_policy(mixed_precision: bool | str, *, gpus: int) -> tuple[str, str | None]:
    """The Keras policy for ``setup(mixed_precision=...)`` and a note when it is not obvious."""
    if mixed_precision is False:
        return "float32", None
    if mixed_precision == "bfloat16":
        if not gpus and not cpu_has_bfloat16():
            return "mixed_bfloat16", ("Note: this CPU has no bfloat16 units; mixed_bfloat16 "
                                      "is emulated and usually slower than float32.")
        return "mixed_bfloat16", None
    if mixed_precision == "float16":
        if not gpus:
            return "mixed_float16", ("Note: float16 on a CPU is emulated and usually slower "
                                     "than float32.")
        return "mixed_float16", None
    # True or "auto": what pays here.
    if gpus:
        return "mixed_float16", None
    if cpu_has_bfloat16():
        return "mixed_bfloat16", None
    return "float32", ("Note: mixed precision left off: this CPU has no bfloat16 units, so 16-bit "
                       "compute would be slower.")


_LAST_REPORT: DeviceReport | None = None


def report() -> DeviceReport | None:
    """The report of the last :func:`setup` call, or ``None`` if it has not run."""
    return _LAST_REPORT


def setup(
    *,
    mixed_precision: bool | str = False,
    xla: bool = False,
    logical_cpus: int | None = None,
    verbose: bool = True,
) -> tf.distribute.Strategy:
    """Start TensorFlow for a notebook and return the distribution strategy to build models in.

    Parameters
    ----------
    mixed_precision:
        ``False``: float32 everywhere. ``True`` (or ``"auto"``): the Keras ``mixed_bfloat16``
        policy on a CPU with bfloat16 units, ``mixed_float16`` on GPUs, float32 otherwise (a
        note says why). ``"bfloat16"`` or ``"float16"`` force that policy. It applies to Keras
        layers built afterwards; :func:`tfpcourse.training.fit` adds loss scaling for float16.
    xla:
        Turn on XLA auto-clustering for all functions. Off by default: on a small CPU it can be
        slower. To compile one function, use ``tf.function(jit_compile=True)`` instead.
    logical_cpus:
        Split the CPU into this many logical devices (at least 2), to try multi-device code
        such as ``MirroredStrategy`` on a laptop. The strategy then mirrors over them. Default:
        the environment variable ``TFPCOURSE_LOGICAL_CPUS`` if set (so that a whole chapter can
        be rehearsed on "several devices" without editing it), else no split.
    verbose:
        Print the device report.

    Returns
    -------
    tf.distribute.Strategy
        ``MirroredStrategy`` over the GPUs if there are several (or over the logical CPUs if
        ``logical_cpus`` was given), else the default strategy.

    Notes
    -----
    Device settings can only be changed before TensorFlow runs its first operation. If
    ``setup`` is called later (say, twice in one kernel), the settings it cannot apply are
    reported in the notes instead of raising; restart the kernel to apply them.
    """
    global _LAST_REPORT
    if not (isinstance(mixed_precision, bool)
            or (isinstance(mixed_precision, str) and mixed_precision in PRECISIONS[2:])):
        raise ValueError(
            f"mixed_precision must be one of {PRECISIONS}, got {mixed_precision!r}"
        )
    check_bool("xla", xla)
    check_bool("verbose", verbose)
    if logical_cpus is None and os.environ.get("TFPCOURSE_LOGICAL_CPUS"):
        raw = os.environ["TFPCOURSE_LOGICAL_CPUS"]
        try:
            logical_cpus = int(raw)
        except ValueError:
            raise ValueError(
                f"TFPCOURSE_LOGICAL_CPUS must be a whole number >= 2, got {raw!r}"
            ) from None
        check_int("TFPCOURSE_LOGICAL_CPUS", logical_cpus, minimum=2)
    check_int("logical_cpus", logical_cpus, minimum=2, allow_none=True)

    _quiet_environment()
    if _in_jupyter_kernel():
        install_stderr_filter()
    notes: list[str] = []
    with quiet_stderr():
        import tensorflow as tf
        import tensorflow_probability as tfp

        tf.get_logger().setLevel("ERROR")
        gpus = tf.config.list_physical_devices("GPU")
        cpus = tf.config.list_physical_devices("CPU")
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                notes.append(
                    "Note: GPU memory growth could not be set because TensorFlow had already "
                    "started; restart the kernel and call setup() first."
                )
                break
        if logical_cpus is not None:
            try:
                tf.config.set_logical_device_configuration(
                    cpus[0], [tf.config.LogicalDeviceConfiguration()] * logical_cpus
                )
            except RuntimeError:
                notes.append(
                    "Note: the CPU could not be split into logical devices because TensorFlow "
                    "had already started; restart the kernel and call setup() first."
                )
        tf.config.optimizer.set_jit(True if xla else False)
        # Running one tiny op initialises the runtime inside the quiet block, so its start-up
        # lines are filtered too.
        tf.constant(0.0).numpy()
        logical = tf.config.list_logical_devices()
        import keras

        policy, note = _choose_policy(mixed_precision, gpus=len(gpus))
        keras.mixed_precision.set_global_policy(policy)
        if note:
            notes.append(note)
        strategy = _choose_strategy(tf, gpus=len(gpus), logical_cpus=logical_cpus)

    _LAST_REPORT = DeviceReport(
        tensorflow_version=tf.__version__,
        tfp_version=tfp.__version__,
        gpus=tuple(g.name for g in gpus),
        cpus=tuple(c.name for c in cpus),
        logical_devices=tuple(d.name for d in logical),
        strategy=_describe_strategy(strategy),
        mixed_precision=policy,
        xla=xla,
        notes=tuple(notes),
    )
    if verbose:
        print(_LAST_REPORT)
    return strategy


def _describe_strategy(strategy: tf.distribute.Strategy) -> str:
    n = strategy.num_replicas_in_sync
    if type(strategy).__name__ == "_DefaultDistributionStrategy":
        return "default (one device, no distribution)"
    return f"{type(strategy).__name__} over {n} replicas"


def _choose_strategy(tf, *, gpus: int, logical_cpus: int | None) -> tf.distribute.Strategy:
    if gpus > 1:
        return tf.distribute.MirroredStrategy()
    if gpus == 0 and logical_cpus:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        if len(devices) > 1:
            # NCCL is GPU-only; on CPUs the reductions go through plain host copies.
            return tf.distribute.MirroredStrategy(
                devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
            )
    return tf.distribute.get_strategy()
