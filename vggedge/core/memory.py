"""Give memory back to the operating system once a large model is no longer referenced.

Python frees objects when their last reference goes, but a full VGG16 held in reference cycles (Keras layers and
their nodes refer to each other) waits for the cycle collector, and glibc's allocator keeps freed large blocks in
its arenas. After loading a user's ``.keras`` file, the Keras 3 model it was read into is garbage: collecting it
and trimming the heap lowers the resident set for the rest of the run (what the peak of ``optimize`` is made of).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def release_memory() -> None:
    """Collect reference cycles now and return free heap pages to the OS (glibc only; elsewhere a no-op)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:  # not glibc: nothing to trim
        return
