/*
 * LD_PRELOAD library: the process sees an AVX2-only x86-64 CPU (no AVX-512, no AVX-VNNI, no AMX).
 *
 * Why: XNNPACK (through cpuinfo) and oneDNN (through xbyak) choose their kernels from the CPUID instruction,
 * and neither has a switch to stop at AVX2. On a CPU with CPUID faulting (Linux: the `cpuid_fault` flag), the
 * kernel can make every CPUID instruction of a thread trap (arch_prctl ARCH_SET_CPUID; inherited by the
 * threads it creates later, reset by execve). The handler below runs the real CPUID with faulting briefly off,
 * clears the feature bits an AVX2-only EPYC (Zen 2) lacks, and steps over the instruction. Both runtimes then
 * run their AVX2 code paths on this CPU. It changes which kernels run, not the hardware under them: figures taken
 * this way are "AVX2 kernels on <this CPU>", never an AVX2-only CPU's.
 *
 * Build: gcc -O2 -shared -fPIC -o avx2_only.so avx2_only.c   (benchmarks/cpuid_mask.py does it for fullsize.py --kernels avx2)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_GET_CPUID 0x1011
#define ARCH_SET_CPUID 0x1012

static volatile unsigned long trapped;

static void set_faulting(int on) { syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    if (leaf == 7 && sub == 0) {
        /* EBX: AVX512F 16, DQ 17, IFMA 21, CD 28, BW 30, VL 31 */
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 28) | (1u << 30) | (1u << 31));
        /* ECX: VBMI 1, VBMI2 6, GFNI 8, VAES 9, VPCLMULQDQ 10, VNNI 11, BITALG 12, VPOPCNTDQ 14 */
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 8) | (1u << 9) | (1u << 10) | (1u << 11) | (1u << 12) |
                  (1u << 14));
        /* EDX: VP2INTERSECT 8, AMX-BF16 22, AVX512-FP16 23, AMX-TILE 24, AMX-INT8 25 */
        r[3] &= ~((1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        /* EAX: AVX-VNNI 4, AVX512-BF16 5, AVX-IFMA 23; EDX: AVX-VNNI-INT8 4, AVX-NE-CONVERT 5 */
        r[0] &= ~((1u << 4) | (1u << 5) | (1u << 23));
        r[3] &= ~((1u << 4) | (1u << 5));
    } else if (leaf == 0xD && sub == 0) {
        /* XSAVE state components: opmask 5, ZMM_Hi256 6, Hi16_ZMM 7, tile config 17, tile data 18 */
        r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));
    } else if (leaf == 0x1D || leaf == 0x1E) {
        r[0] = r[1] = r[2] = r[3] = 0; /* AMX tile and TMUL information */
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = (ucontext_t *)context;
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (ip[0] != 0x0F || ip[1] != 0xA2) { /* a real crash: die as the process would have */
        signal(SIGSEGV, SIG_DFL);
        raise(sig);
        return;
    }
    uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX], r[4];
    set_faulting(0);
    real_cpuid(leaf, sub, r);
    set_faulting(1);
    mask(leaf, sub, r);
    g[REG_RAX] = r[0];
    g[REG_RBX] = r[1];
    g[REG_RCX] = r[2];
    g[REG_RDX] = r[3];
    g[REG_RIP] += 2;
    trapped++;
    (void)info;
}

__attribute__((constructor)) static void start(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &action, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "avx2_only: this CPU or kernel has no CPUID faulting (cpuid_fault); nothing masked\n");
        _exit(3);
    }
}

__attribute__((destructor)) static void report(void) {
    if (getenv("AVX2_ONLY_VERBOSE")) fprintf(stderr, "avx2_only: %lu CPUID instructions masked\n", trapped);
}
