"""Machine memory, GPU detection from tool output, and the will-it-fit estimate."""

from __future__ import annotations

import math
import platform
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

from app import hardware
from app.hardware import (
    MIB,
    GpuInfo,
    MachineMemory,
    is_apple_silicon,
    machine_memory_from,
    parse_nvidia_smi,
    parse_rocm_smi,
    read_machine_memory,
)
from app.library.sniff import GgufShape
from app.llm import (
    COMFORTABLE_SHARE,
    DEFAULT_CONTEXT_LENGTH,
    Fit,
    KvCacheType,
    estimate_file_fit,
    estimate_kv_cache_bytes,
    estimate_overhead_bytes,
    fit_within,
    kv_cache_bytes_of,
)
from app.units import format_bytes

GB = 1_000_000_000


def ram_only(available: int, *, total: int | None = None) -> MachineMemory:
    return MachineMemory(
        ram_total=total if total is not None else available * 2,
        ram_available=available,
        gpus=(),
        unified_memory=False,
    )


# --- format_bytes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (999, "999 B"),
        (1000, "1 kB"),
        (1536, "1.54 kB"),
        (812_000_000, "812 MB"),
        (999_499_999, "999 MB"),
        (999_999_999, "1 GB"),
        (4_920_000_000, "4.92 GB"),
        (4_900_000_000, "4.9 GB"),
        (18_200_000_000, "18.2 GB"),
        (99_960_000_000, "100 GB"),
        (141_000_000_000, "141 GB"),
        (2_500_000_000_000, "2.5 TB"),
        (-1_500_000_000, "-1.5 GB"),
        (5e9, "5 GB"),
    ],
)
def test_format_bytes(n: float, expected: str) -> None:
    assert format_bytes(n) == expected


@pytest.mark.parametrize("n", [math.nan, math.inf, -math.inf])
def test_format_bytes_rejects_non_numbers(n: float) -> None:
    with pytest.raises(ValueError):
        format_bytes(n)


# --- nvidia-smi / rocm-smi -------------------------------------------------------------------


def test_parse_nvidia_smi_one_gpu_in_mib() -> None:
    (gpu,) = parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564, 23592\n")
    assert gpu == GpuInfo(
        name="NVIDIA GeForce RTX 4090",
        backend="cuda",
        total_bytes=24564 * MIB,
        free_bytes=23592 * MIB,
    )


def test_parse_nvidia_smi_several_gpus_and_windows_line_ends() -> None:
    output = "NVIDIA H100 80GB HBM3, 81559, 81004\r\nTesla T4, 15360, 15098\r\n"
    gpus = parse_nvidia_smi(output)
    assert [g.name for g in gpus] == ["NVIDIA H100 80GB HBM3", "Tesla T4"]
    assert [g.free_bytes for g in gpus] == [81004 * MIB, 15098 * MIB]


@pytest.mark.parametrize(
    "output",
    [
        "",
        "\n\n",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running.\n",
        "No devices were found\n",
        "NVIDIA GB10, [N/A], [N/A]\n",
        "NVIDIA Jetson, [Not Supported], [Not Supported]\n",
        "GPU, 24564\n",
        ", 24564, 23592\n",
        "GPU, -1, 0\n",
        "GPU, 100, 200\n",  # more free than total: nonsense
        "GPU, nan, nan\n",
        "GPU, inf, 1\n",
        "\x00\xff garbage, ,\n",
    ],
)
def test_parse_nvidia_smi_garbage_gives_no_gpus(output: str) -> None:
    assert parse_nvidia_smi(output) == ()


def test_parse_nvidia_smi_keeps_the_good_lines() -> None:
    output = "Failed to initialize NVML: Unknown Error\nRTX A4000, 16376, 1000\nbroken\n"
    (gpu,) = parse_nvidia_smi(output)
    assert gpu.name == "RTX A4000"
    assert gpu.total_bytes == 16376 * MIB


ROCM_SMI = """WARNING: AMD GPU device(s) is/are in a low-power state. Check power control
{"card0": {"VRAM Total Memory (B)": "25753026560", "VRAM Total Used Memory (B)": "1073741824",
 "Card Series": "Radeon RX 7900 XTX", "Card Model": "0x744c", "Card Vendor": "AMD"},
 "card1": {"VRAM Total Memory (B)": "68702699520", "VRAM Total Used Memory (B)": "10960896",
 "Card series": "AMD Instinct MI210"},
 "card2": {"VRAM Total Memory (B)": "1000", "VRAM Total Used Memory (B)": "0"},
 "system": {"Driver version": "6.7.0"}}
"""


def test_parse_rocm_smi() -> None:
    gpus = parse_rocm_smi(ROCM_SMI)
    assert gpus == (
        GpuInfo(
            name="Radeon RX 7900 XTX",
            backend="rocm",
            total_bytes=25753026560,
            free_bytes=25753026560 - 1073741824,
        ),
        GpuInfo(
            name="AMD Instinct MI210",
            backend="rocm",
            total_bytes=68702699520,
            free_bytes=68702699520 - 10960896,
        ),
        GpuInfo(name="card2", backend="rocm", total_bytes=1000, free_bytes=1000),
    )


@pytest.mark.parametrize(
    "output",
    [
        "",
        "ERROR: GPU[0] : Unable to read VRAM\n",
        "{not json",
        "[1, 2, 3]",
        '{"card0": "nothing"}',
        '{"card0": {"VRAM Total Memory (B)": "N/A", "VRAM Total Used Memory (B)": "0"}}',
        '{"card0": {"VRAM Total Memory (B)": "10", "VRAM Total Used Memory (B)": "20"}}',
    ],
)
def test_parse_rocm_smi_garbage_gives_no_gpus(output: str) -> None:
    assert parse_rocm_smi(output) == ()


# --- deciding what the machine has -----------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "machine", "sysctl", "expected"),
    [
        ("Darwin", "arm64", None, True),
        ("Darwin", "x86_64", "1\n", True),  # Python under Rosetta on Apple Silicon
        ("Darwin", "x86_64", "0\n", False),  # an Intel Mac
        ("Darwin", "x86_64", None, False),
        ("Linux", "aarch64", "1", False),
        ("Windows", "ARM64", None, False),
    ],
)
def test_is_apple_silicon(system: str, machine: str, sysctl: str | None, expected: bool) -> None:
    assert is_apple_silicon(system=system, machine=machine, arm64_capable=sysctl) is expected


def test_apple_silicon_is_one_metal_gpu_sharing_ram() -> None:
    memory = machine_memory_from(
        ram_total=32 * GB,
        ram_available=20 * GB,
        apple_silicon=True,
        apple_chip="Apple M2 Pro\n",
        nvidia_smi_output="Ghost GPU, 1000, 1000",
    )
    assert memory.unified_memory
    (gpu,) = memory.gpus
    assert gpu.backend == "metal"
    assert gpu.name == "Apple M2 Pro"
    assert gpu.total_bytes == 24 * GB
    assert gpu.free_bytes == 20 * GB
    assert memory.budget == 20 * GB  # not 40 GB: the GPU's memory is the same RAM


def test_metal_free_memory_is_capped_by_the_working_set() -> None:
    memory = machine_memory_from(ram_total=16 * GB, ram_available=15 * GB, apple_silicon=True)
    assert memory.gpus[0].name == "Apple GPU"
    assert memory.gpus[0].free_bytes == memory.gpus[0].total_bytes == 12 * GB


def test_discrete_gpus_from_both_tools_add_to_the_budget() -> None:
    memory = machine_memory_from(
        ram_total=64 * GB,
        ram_available=30 * GB,
        nvidia_smi_output="RTX 3090, 24576, 20000\n",
        rocm_smi_output=ROCM_SMI,
    )
    assert not memory.unified_memory
    assert [g.backend for g in memory.gpus] == ["cuda", "rocm", "rocm", "rocm"]
    assert memory.vram_free == sum(g.free_bytes for g in memory.gpus)
    assert memory.budget == 30 * GB + memory.vram_free


def test_no_tool_output_means_no_gpus() -> None:
    memory = machine_memory_from(ram_total=8 * GB, ram_available=4 * GB)
    assert memory == MachineMemory(
        ram_total=8 * GB, ram_available=4 * GB, gpus=(), unified_memory=False
    )
    assert memory.budget == 4 * GB


# --- reading this machine --------------------------------------------------------------------


def test_read_machine_memory_on_this_machine() -> None:
    memory = read_machine_memory()
    assert memory.ram_total > 256 * MIB
    assert 0 < memory.ram_available <= memory.ram_total
    for gpu in memory.gpus:
        assert gpu.backend in ("cuda", "metal", "rocm")
        assert 0 <= gpu.free_bytes <= gpu.total_bytes
        assert gpu.name
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    if apple:
        assert memory.unified_memory
    if sys.platform != "darwin":
        assert not memory.unified_memory
        assert all(gpu.backend != "metal" for gpu in memory.gpus)


SLEEP = shutil.which("sleep")  # looked up before a test narrows PATH to its fake tools
needs_posix_shell = pytest.mark.skipif(sys.platform == "win32", reason="fake tool is a sh script")


def install_fake_tool(directory: Path, name: str, script: str) -> None:
    tool = directory / name
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH that holds only the fake tools the test installs (and no real GPU tools)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(hardware, "is_apple_silicon", lambda **_: False)
    return tmp_path


@needs_posix_shell
def test_read_machine_memory_asks_nvidia_smi(fake_tools: Path) -> None:
    install_fake_tool(
        fake_tools,
        "nvidia-smi",
        'if [ "$*" != "--query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits" ]'
        "; then exit 2; fi\n"
        'echo "NVIDIA GeForce RTX 4070, 12282, 11000"\n',
    )
    memory = read_machine_memory()
    assert memory.gpus == (
        GpuInfo(
            name="NVIDIA GeForce RTX 4070",
            backend="cuda",
            total_bytes=12282 * MIB,
            free_bytes=11000 * MIB,
        ),
    )


@needs_posix_shell
def test_read_machine_memory_asks_rocm_smi(fake_tools: Path) -> None:
    install_fake_tool(fake_tools, "rocm-smi", f"echo '{ROCM_SMI}'\n")
    memory = read_machine_memory()
    assert [g.name for g in memory.gpus] == ["Radeon RX 7900 XTX", "AMD Instinct MI210", "card2"]


@needs_posix_shell
def test_a_failing_nvidia_smi_means_no_gpus(fake_tools: Path) -> None:
    install_fake_tool(
        fake_tools, "nvidia-smi", 'echo "NVIDIA GeForce RTX 4070, 12282, 11000"\nexit 9\n'
    )
    assert read_machine_memory().gpus == ()


@needs_posix_shell
def test_a_hanging_nvidia_smi_is_given_up_on(
    fake_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hardware, "TOOL_TIMEOUT_S", 0.3)
    assert SLEEP is not None
    install_fake_tool(fake_tools, "nvidia-smi", f"exec {SLEEP} 30\n")
    started = time.monotonic()
    assert read_machine_memory().gpus == ()
    assert 0.25 < time.monotonic() - started < 10


@needs_posix_shell
def test_a_tool_that_cannot_run_means_no_gpus(fake_tools: Path) -> None:
    tool = fake_tools / "nvidia-smi"
    tool.write_text("not a script")  # no #! line, and not executable for exec
    tool.chmod(0o755)
    assert read_machine_memory().gpus == ()


# --- KV cache --------------------------------------------------------------------------------


def test_kv_cache_of_an_8b_model_matches_llama_3_8b() -> None:
    # Llama-3.1-8B: 32 layers, 8 KV heads x 128 = 1024 wide, f16 cache.
    assert estimate_kv_cache_bytes(8e9, 4096) == 2 * 32 * 1024 * 4096 * 2


def test_kv_cache_of_a_70b_model_matches_llama_3_70b() -> None:
    assert estimate_kv_cache_bytes(70e9, 8192) == 2 * 80 * 1024 * 8192 * 2


def test_kv_cache_scales_with_context_and_element_size() -> None:
    base = estimate_kv_cache_bytes(3e9, 4096)
    assert estimate_kv_cache_bytes(3e9, 8192) == pytest.approx(2 * base, abs=1)
    assert estimate_kv_cache_bytes(3e9, 4096, kv_bytes_per_element=1.0) == pytest.approx(
        base / 2, abs=1
    )
    assert estimate_kv_cache_bytes(3e9, 0) == 0


def test_kv_cache_grows_with_model_size() -> None:
    sizes = [10**8 * 1.25**i for i in range(45)]  # 100M .. ~2T parameters
    caches = [estimate_kv_cache_bytes(size, 4096) for size in sizes]
    assert caches == sorted(caches)
    assert caches[0] == estimate_kv_cache_bytes(0.5e9, 4096)  # below the table: smallest row
    assert caches[-1] == estimate_kv_cache_bytes(405e9, 4096)  # above it: largest row


def test_kv_cache_interpolates_between_rows() -> None:
    low, high = estimate_kv_cache_bytes(8e9, 4096), estimate_kv_cache_bytes(14e9, 4096)
    assert low < estimate_kv_cache_bytes(11e9, 4096) < high


@pytest.mark.parametrize(
    ("parameters", "context", "element"),
    [(0, 4096, 2.0), (-1e9, 4096, 2.0), (math.nan, 4096, 2.0), (1e9, -1, 2.0), (1e9, 1, -1.0)],
)
def test_kv_cache_rejects_nonsense(parameters: float, context: int, element: float) -> None:
    with pytest.raises(ValueError):
        estimate_kv_cache_bytes(parameters, context, kv_bytes_per_element=element)


# --- estimate_file_fit -----------------------------------------------------------------------

# A Q4_K_M file of 4.85 GB holds 8e9 parameters at 4.85 bits per weight: an 8B model.
Q4_8B_SIZE = 4_850_000_000


def test_fit_adds_weights_kv_cache_and_overhead() -> None:
    estimate = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(100 * GB))
    assert estimate.weights_bytes == Q4_8B_SIZE
    assert estimate.kv_cache_bytes == 2 * 32 * 1024 * 4096 * 2
    assert estimate.overhead_bytes == 300 * MIB + math.ceil(Q4_8B_SIZE * 0.05)
    assert estimate.total_bytes == (
        estimate.weights_bytes + estimate.kv_cache_bytes + estimate.overhead_bytes
    )
    assert estimate.context_length == DEFAULT_CONTEXT_LENGTH == 4096
    assert estimate.fit is Fit.FITS


def test_fit_derives_the_parameter_count_from_the_quantization() -> None:
    f16 = estimate_file_fit(16 * GB, "F16", ram_only(100 * GB))  # 8e9 parameters
    q4 = estimate_file_fit(16 * GB, "Q4_K_M", ram_only(100 * GB))  # 26e9 parameters
    assert f16.kv_cache_bytes == estimate_kv_cache_bytes(8e9, 4096)
    assert q4.kv_cache_bytes > f16.kv_cache_bytes


def test_unknown_quantization_assumes_q4_k_m() -> None:
    unknown = estimate_file_fit(Q4_8B_SIZE, None, ram_only(100 * GB))
    odd = estimate_file_fit(Q4_8B_SIZE, "GPTQ", ram_only(100 * GB))
    known = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(100 * GB))
    assert unknown.total_bytes == odd.total_bytes == known.total_bytes
    assert "unknown" in unknown.explanation
    assert "unknown" not in known.explanation


def test_longer_context_needs_more() -> None:
    short = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(100 * GB), context_length=2048)
    long = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(100 * GB), context_length=32768)
    assert long.kv_cache_bytes == 16 * short.kv_cache_bytes
    assert long.context_length == 32768
    assert "32,768 tokens" in long.explanation


def test_fit_thresholds() -> None:
    required = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(100 * GB)).total_bytes

    def fit_with(available: int) -> Fit:
        return estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(available)).fit

    assert fit_with(math.ceil(required / COMFORTABLE_SHARE) + 1) is Fit.FITS  # just under 90%
    assert fit_with(math.floor(required / COMFORTABLE_SHARE) - 1) is Fit.TIGHT  # just over 90%
    assert fit_with(required) is Fit.TIGHT  # exactly all of it
    assert fit_with(required - 1) is Fit.WONT_FIT
    assert fit_with(0) is Fit.WONT_FIT


def test_free_vram_adds_to_available_ram() -> None:
    gpu = GpuInfo(name="RTX 4060", backend="cuda", total_bytes=8 * GB, free_bytes=7 * GB)
    with_gpu = MachineMemory(
        ram_total=16 * GB, ram_available=5 * GB, gpus=(gpu,), unified_memory=False
    )
    estimate = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", with_gpu)
    assert estimate.gpu_layers == 33  # every layer of the guessed 8B shape, and the output
    assert estimate.fit is Fit.FITS
    assert estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(5 * GB)).fit is Fit.WONT_FIT
    assert "5 GB of RAM and 7 GB of GPU memory free now" in estimate.explanation


def test_unified_memory_is_not_counted_twice() -> None:
    metal = GpuInfo(name="Apple M1", backend="metal", total_bytes=6 * GB, free_bytes=6 * GB)
    mac = MachineMemory(ram_total=8 * GB, ram_available=5 * GB, gpus=(metal,), unified_memory=True)
    estimate = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", mac)
    assert estimate.fit is Fit.WONT_FIT  # would fit in a double-counted 11 GB
    assert "shared by CPU and GPU" in estimate.explanation


def test_explanation_reads_like_a_sentence() -> None:
    estimate = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(18_200_000_000))
    assert estimate.explanation == (
        f"Needs about {format_bytes(estimate.total_bytes)} of RAM (4.85 GB weights + 537 MB "
        "context at 4,096 tokens + buffers), all on the CPU; 18.2 GB of RAM free now."
    )
    tight = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(estimate.total_bytes))
    assert "Tight" in tight.explanation
    wont = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(GB))
    assert "smaller quantization" in wont.explanation


def test_an_empty_file_needs_only_the_overhead() -> None:
    estimate = estimate_file_fit(0, "Q4_K_M", ram_only(GB))
    assert estimate.kv_cache_bytes == 0
    assert estimate.total_bytes == estimate.overhead_bytes == 300 * MIB


@pytest.mark.parametrize(("size", "context"), [(-1, 4096), (GB, -1)])
def test_fit_rejects_negative_input(size: int, context: int) -> None:
    with pytest.raises(ValueError):
        estimate_file_fit(size, "Q4_K_M", ram_only(GB), context_length=context)


def test_fit_values_are_the_strings_the_ui_shows() -> None:
    assert [fit.value for fit in Fit] == ["fits", "tight", "won't fit"]


# --- the exact KV cache, from a GGUF header --------------------------------------------------


def gguf_shape(
    *, layers: int, kv_heads: int | tuple[int, ...], head_dim: int, embedding: int = 4096
) -> GgufShape:
    per_layer = kv_heads if isinstance(kv_heads, tuple) else (kv_heads,) * layers
    return GgufShape(
        architecture="llama",
        block_count=layers,
        embedding_length=embedding,
        head_count=32,
        head_count_kv=max(per_layer),
        key_length=head_dim,
        value_length=head_dim,
        context_length=131_072,
        kv_heads_per_layer=per_layer,
        layer_bytes=(131_000_000,) * layers,
        embedding_bytes=295_501_824,
        output_bytes=430_956_544,
        other_bytes=0,
        tied_embeddings=False,
    )


# Llama-3.1-8B: 32 layers, 32 heads of 128, 8 of them for K/V.
LLAMA_8B = gguf_shape(layers=32, kv_heads=8, head_dim=128)


def test_exact_kv_cache_of_llama_3_1_8b_at_8k_is_one_gib() -> None:
    # K: 32 layers x 8192 tokens x 8 heads x 128 x 2 bytes = 512 MiB; V the same.
    assert kv_cache_bytes_of(LLAMA_8B, 8192) == 2**30


def test_exact_kv_cache_matches_the_guess_for_a_typical_model() -> None:
    assert kv_cache_bytes_of(LLAMA_8B, 4096) == estimate_kv_cache_bytes(8e9, 4096)


def test_exact_kv_cache_by_layers_and_element_size() -> None:
    assert kv_cache_bytes_of(LLAMA_8B, 8192, layers=range(16, 32)) == 2**29
    assert kv_cache_bytes_of(LLAMA_8B, 8192, kv_bytes_per_element=34 / 32) == 2**30 * 34 // 64
    assert kv_cache_bytes_of(LLAMA_8B, 0) == 0
    varied = gguf_shape(layers=2, kv_heads=(8, 0), head_dim=128)  # a layer without attention
    assert kv_cache_bytes_of(varied, 1) == 8 * 256 * 2


@pytest.mark.parametrize(("context", "element"), [(-1, 2.0), (1, -1.0), (1, math.nan)])
def test_exact_kv_cache_rejects_nonsense(context: int, element: float) -> None:
    with pytest.raises(ValueError):
        kv_cache_bytes_of(LLAMA_8B, context, kv_bytes_per_element=element)


def test_fit_with_a_header_uses_the_exact_kv_cache() -> None:
    # An old model without grouped-query attention: 40 layers of 5120, all heads cache K/V.
    llama_2_13b = gguf_shape(layers=40, kv_heads=40, head_dim=128, embedding=5120)
    size = 7_870_000_000  # Q4_K_M
    guessed = estimate_file_fit(size, "Q4_K_M", ram_only(100 * GB))
    exact = estimate_file_fit(size, "Q4_K_M", ram_only(100 * GB), shape=llama_2_13b)
    assert exact.kv_cache_bytes == 2 * 40 * 5120 * 4096 * 2
    assert exact.kv_cache_bytes > guessed.kv_cache_bytes  # the table assumes GQA
    assert exact.weights_bytes == guessed.weights_bytes == size
    assert exact.overhead_bytes == guessed.overhead_bytes
    assert exact.total_bytes == size + exact.kv_cache_bytes + exact.overhead_bytes


def test_fit_with_a_header_needs_no_quantization() -> None:
    estimate = estimate_file_fit(Q4_8B_SIZE, None, ram_only(100 * GB), shape=LLAMA_8B)
    assert estimate.kv_cache_bytes == kv_cache_bytes_of(LLAMA_8B, DEFAULT_CONTEXT_LENGTH)
    assert "unknown" not in estimate.explanation


def test_fit_with_a_quantized_kv_cache() -> None:
    f16 = estimate_file_fit(Q4_8B_SIZE, "Q4_K_M", ram_only(100 * GB), context_length=8192)
    q8 = estimate_file_fit(
        Q4_8B_SIZE,
        "Q4_K_M",
        ram_only(100 * GB),
        context_length=8192,
        shape=LLAMA_8B,
        kv_type=KvCacheType.Q8_0,
    )
    assert f16.kv_cache_bytes == 2**30
    assert q8.kv_cache_bytes == 2**30 * 34 // 64


def test_overhead_is_a_compute_buffer_and_a_margin() -> None:
    assert estimate_overhead_bytes(GB) == 300 * MIB + 50_000_000
    assert estimate_overhead_bytes(GB, compute_buffer=False) == 50_000_000
    assert estimate_overhead_bytes(0) == 300 * MIB
    assert estimate_overhead_bytes(1, compute_buffer=False) == 1  # rounded up


def test_fit_within() -> None:
    assert fit_within(90, 100) is Fit.FITS
    assert fit_within(91, 100) is Fit.TIGHT
    assert fit_within(100, 100) is Fit.TIGHT
    assert fit_within(101, 100) is Fit.WONT_FIT
    assert fit_within(81, 100, comfortable_share=0.8) is Fit.TIGHT
    assert fit_within(0, 0) is Fit.FITS
    assert fit_within(1, 0) is Fit.WONT_FIT
    assert COMFORTABLE_SHARE == 0.9  # RAM and GPU memory alike
