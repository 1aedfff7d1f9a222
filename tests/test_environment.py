"""What every report records about the machine: CPU features and emulation, read from the OS alone."""

from __future__ import annotations

from vggedge.device.environment import cpu_features, emulation

ZEN4 = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
    "flags\t\t: fpu sse avx2 fma avx512f avx512_vnni avx512_bf16\n"
)
AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse avx avx2 fma\n"
PI5 = (
    "processor\t: 0\nBogoMIPS\t: 108.00\n"
    "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"
)
PI4 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n"


def test_cpu_features_say_what_decides_integer_speed():
    assert cpu_features(ZEN4) == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert cpu_features(AVX2_ONLY) == ["avx2", "fma"]
    assert cpu_features(PI5) == ["asimd", "asimddp"]  # the Pi 5's Cortex-A76 has the dot product
    assert cpu_features(PI4) == ["asimd"]  # the Pi 4's Cortex-A72 has not
    assert cpu_features("") == []


def test_emulation_is_recognised():
    assert emulation(ZEN4, "x86_64", "python") is None
    assert emulation(PI4, "aarch64", "python3.11") is None
    assert "aarch64 process on a x86 CPU" in emulation(ZEN4, "aarch64", "python3.11")  # qemu-user via binfmt
    assert "under qemu-aarch64" in emulation(PI4, "aarch64", "qemu-aarch64-st")  # qemu-user run directly
