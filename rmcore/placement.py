"""Which device a run trains on, what its GPU reports, and the CPU it leaves the UI.

The runner keeps one queue per device. With several visible GPUs, "auto" and "cuda" become
a concrete "cuda:i" when the run is submitted: the GPU with the fewest live runs (running
plus queued), ties to the lowest index; "cuda:N" picks one GPU. With one GPU or none, names
resolve as they always have ("auto" -> cuda > mps > cpu), and "cuda:0" on a one-GPU machine
is the "cuda" queue, so one physical device never gets two queues.

Each GPU of several runs one run at a time (``slots``): torch's peak-memory counter and
NVML's utilisation belong to the device, not to a thread, so perf/gpu_mem_gb and
perf/gpu_util describe a run only while it has its GPU to itself; and two runs sharing a GPU
is how a second tab runs the first out of memory (STREAMLIT.md, traps).

torch is imported inside the functions: the runner imports this module and must stay light.
"""
from __future__ import annotations

import collections
import os
import re
from typing import TYPE_CHECKING, Any, Mapping

from rmcore.config import DEVICES
from rmcore.errors import ConfigError

if TYPE_CHECKING:
    import torch

_ONE_GPU = re.compile(r"cuda:([0-9]+)")


def gpu_count() -> int:
    """CUDA GPUs visible to this process (0 without CUDA)."""
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_choices() -> tuple[str, ...]:
    """The device selector's options: DEVICES, then cuda:0 … cuda:n-1 when n > 1 GPUs are visible."""
    n = gpu_count()
    return DEVICES + tuple(f"cuda:{i}" for i in range(n)) if n > 1 else DEVICES


def resolve_device(device: str) -> str:
    """"auto" -> cuda > mps > cpu, as TrainConfig.device documents; other names unchanged."""
    if device != "auto":
        return device
    import torch
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if _mps_available() else "cpu"


def torch_device(name: str = "auto") -> "torch.device":
    """The torch.device a trainer or scorer runs on: 'auto' resolved, an absent device a
    ConfigError (one sentence). The one place that says which devices exist."""
    import torch

    name = resolve_device(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use --device auto or cpu.")
    if name == "mps" and not _mps_available():
        raise ConfigError("device 'mps' was asked for but Apple MPS is not available; use --device auto or cpu.")
    if name.startswith("cuda:"):
        check_device(name)
    elif name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"Unknown device {name!r}; use auto, cpu, cuda or mps.")
    return torch.device(name)


def describe_device(name: str = "auto") -> str:
    """What the device is, in words, for the app's sidebar."""
    import torch

    device = torch_device(name)
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def _mps_available() -> bool:
    import torch
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def check_device(device: str) -> None:
    """ConfigError (one sentence) when device names a GPU this process cannot see: cuda:N, N >= count."""
    if not device.startswith("cuda:"):
        return
    if (match := _ONE_GPU.fullmatch(device)) is None:
        raise ConfigError(f"Unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps.")
    n = gpu_count()
    if n == 0:
        raise ConfigError(f"device {device!r} was asked for but no CUDA GPU is visible; use auto or cpu.")
    if int(match.group(1)) >= n:
        raise ConfigError(f"device {device!r} is not a visible GPU: there are {n} (cuda:0 to cuda:{n - 1}); "
                          "use auto to take the least-loaded one.")


def place(device: str, load: Mapping[str, int]) -> str:
    """The queue a run asking for `device` joins; load: live runs (running + queued) per queue.

    Several GPUs: "auto" and "cuda" -> the least-loaded "cuda:i", "cuda:N" -> "cuda:N".
    One GPU or none: as resolve_device, with "cuda:0" -> "cuda".
    """
    check_device(device)
    n = gpu_count()
    if (match := _ONE_GPU.fullmatch(device)) is not None:
        return "cuda" if n == 1 else f"cuda:{int(match.group(1))}"  # int(): "cuda:01" is cuda:1's queue
    if n > 1 and device in ("auto", "cuda"):
        return min((f"cuda:{i}" for i in range(n)), key=lambda d: load.get(d, 0))  # first minimum: lowest index
    return resolve_device(device)


def slots(device: str, max_concurrent: int) -> int:
    """Runs a queue may train at once: one per GPU of several, max_concurrent elsewhere (as before)."""
    return 1 if _ONE_GPU.fullmatch(device) else max_concurrent


def leave_a_core_for_the_ui() -> None:
    """Cap torch's intra-op threads at cpu_count - 1 so the Streamlit server stays responsive.

    Training in a thread shares the process (and the GIL) with the UI; with every core
    busy in matmuls, page reruns stall. torch is imported here anyway to resolve "auto"
    devices. Only ever lowers the count, once per process.
    """
    import torch
    wanted = max(1, (os.cpu_count() or 1) - 1)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)


def claim_device(device: str) -> None:
    """In the run's worker thread, before training: make its GPU current and zero its peak memory.

    CUDA's current device is per host thread, so anything the trainer creates on plain
    "cuda" lands on this run's GPU; the reset makes perf/gpu_mem_gb this run's own peak.
    """
    if not device.startswith("cuda"):
        return
    import torch
    if _ONE_GPU.fullmatch(device):
        torch.cuda.set_device(device)
    torch.cuda.reset_peak_memory_stats(device)


def gpu_metrics(device: str) -> dict[str, float]:
    """The run's GPU after a step; {} off CUDA.

    perf/gpu_mem_gb: peak memory torch allocated on the device since claim_device, in GB
    (tensors only, not the allocator's cache). perf/gpu_util: percent of NVML's last sample
    period in which the GPU ran kernels (any process's); left out where NVML cannot say.
    """
    if not device.startswith("cuda"):
        return {}
    import torch
    metrics = {"perf/gpu_mem_gb": torch.cuda.max_memory_allocated(device) / 1e9}
    try:
        metrics["perf/gpu_util"] = float(torch.cuda.utilization(device))
    except Exception:  # no pynvml installed, or a driver / MIG slice that does not report it
        pass
    return metrics


class DeviceQueues:
    """One FIFO queue per device and the runs each device is training.

    Holds the runner's jobs (anything with .run_id and .device). Not thread-safe: the runner
    calls it with its lock held, so placing a run and queueing it are one step and two tabs
    submitting at once see each other's runs.
    """

    def __init__(self, max_concurrent: int = 1) -> None:
        self.max_concurrent = max_concurrent
        self._queued: dict[str, collections.deque[Any]] = collections.defaultdict(collections.deque)
        self._running: dict[str, set[str]] = collections.defaultdict(set)

    def place(self, device: str) -> str:
        """The queue for a run asking for `device`, given the runs live here now (see place)."""
        load = {d: len(self._queued[d]) + len(self._running[d]) for d in {*self._queued, *self._running}}
        return place(device, load)

    def push(self, job: Any) -> None:
        self._queued[job.device].append(job)

    def drop(self, job: Any) -> bool:
        """Take a job out of its queue; False if it is not queued (it runs, or is gone)."""
        queue = self._queued[job.device]
        if job not in queue:
            return False
        queue.remove(job)
        return True

    def ready(self, device: str) -> list[Any]:
        """Pop the jobs that may start on `device` now, counted as running from here on."""
        queue, running, started = self._queued[device], self._running[device], []
        while queue and len(running) < slots(device, self.max_concurrent):
            job = queue.popleft()
            running.add(job.run_id)
            started.append(job)
        return started

    def finish(self, job: Any) -> None:
        self._running[job.device].discard(job.run_id)

    def position(self, job: Any) -> int:
        """0 while it runs, 1 for the next in its device's queue, and so on."""
        if job.run_id in self._running[job.device]:
            return 0
        return list(self._queued[job.device]).index(job) + 1
