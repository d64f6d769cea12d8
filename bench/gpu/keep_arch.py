"""Zeroes a CUDA library's kernels for every GPU architecture but one, so that it compresses to
what a device call can carry (ONNX Runtime's CUDA provider: 284 MB, 53 MB with zstd once only its
sm_90 kernels are left). The library still loads and runs on that architecture alone.

  keep_arch.py SRC DST ARCH    e.g. libonnxruntime_providers_cuda.so out.so 90 (Hopper: H100, H200)
"""
import collections
import struct
import sys

FATBIN = struct.pack("<I", 0xBA55ED50)


def keep(data, arch):
    """Zeroes the payload of every fat binary entry (cubin or PTX) not built for ARCH, in place."""
    sizes, pos = collections.Counter(), 0
    while (start := data.find(FATBIN, pos)) >= 0:
        version, header, size = struct.unpack_from("<HHQ", data, start + 4)
        if version != 1 or header != 16 or start + 16 + size > len(data):
            pos = start + 4
            continue
        entry, end = start + 16, start + 16 + size
        while entry < end:
            _, _, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            entry_arch = struct.unpack_from("<I", data, entry + 28)[0]
            if entry_header < 32 or entry + entry_header + payload > end:
                break
            sizes[entry_arch] += payload
            if entry_arch != arch:
                data[entry + entry_header:entry + entry_header + payload] = bytes(payload)
            entry += entry_header + payload
        pos = end
    return sizes


if __name__ == "__main__":
    library = bytearray(open(sys.argv[1], "rb").read())
    sizes = keep(library, int(sys.argv[3]))
    open(sys.argv[2], "wb").write(library)
    print("bytes per architecture:", dict(sorted(sizes.items())), "kept:", sys.argv[3])
