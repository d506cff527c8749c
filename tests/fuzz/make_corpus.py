#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): a few small valid
and near-valid inputs each, in the layouts the targets' header comments describe. Rerun after a
layout changes: python3 tests/fuzz/make_corpus.py (it replaces the folders)."""
import os
import re
import shutil
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_wan_frames: [config][receives][u16 size]...[ctl][u16 len][bytes]...
FRAME_MAGIC, FRAME_VERSION = 0x58535731, 4


def frame(seq, message, offset, payload, message_bytes, channel=0, flags=0, magic=FRAME_MAGIC,
          length=None, crc=None):
    length = len(payload) if length is None else length
    h = struct.pack("<IBBBBIIQQQQII", magic, FRAME_VERSION, channel, flags, 0, length, 0, seq,
                    message, offset, message_bytes, 0, 0)
    if crc is None:
        crc = crc32c(payload, crc32c(h))
    h = h[:12] + struct.pack("<I", crc) + h[16:]
    return h + payload


def chunk(ctl, data):
    return struct.pack("<BH", ctl, len(data)) + data


def wan_frames():
    t = "fuzz_wan_frames"
    one = bytes([0x00, 0x01]) + struct.pack("<H", 10)
    write(t, "one_frame", one + chunk(0, frame(0, 0, 0, b"ABCDEFGHIJ", 10)))
    write(t, "one_frame_fixed", one + chunk(0x80, frame(0, 0, 0, b"ABCDEFGHIJ", 10, crc=0)))
    two = bytes([0x01, 0x01]) + struct.pack("<H", 10)
    write(t, "two_streams_any_order",
          two + chunk(1, frame(1, 0, 6, b"GHIJ", 10)) + chunk(0, frame(0, 0, 0, b"ABCDEF", 10)))
    write(t, "size_disagrees",
          two + chunk(0, frame(0, 0, 0, b"ABCDEF", 10)) + chunk(1, frame(1, 0, 6, b"GHIJ", 12)))
    write(t, "overlap", two + chunk(0, frame(0, 0, 0, b"abcdef", 10)) + chunk(1, frame(1, 0, 4, b"efghij", 10)))
    write(t, "bad_magic", one + chunk(0, frame(0, 0, 0, b"ABCDEFGHIJ", 10, magic=0xDEADBEEF)))
    write(t, "bad_crc", one + chunk(0, frame(0, 0, 0, b"ABCDEFGHIJ", 10, crc=1)))
    write(t, "cut_inside", bytes([0x20, 0x01]) + struct.pack("<H", 10) + chunk(0, frame(0, 0, 0, b"ABCDEFGHIJ", 10)[:20]))
    write(t, "ack_of_send", bytes([0x40, 0x00]) + chunk(0, frame(5, 0, 0, b"", 0, flags=1)))
    # Channels 0 and 1 on one link; message 1 of channel 1 arrives before its receive exists.
    shared = bytes([0x05, 0x01]) + struct.pack("<HH", 4, 4)
    write(t, "two_channels_early",
          shared + chunk(0, frame(0, 1, 0, b"late", 4, channel=1)) +
          chunk(1, frame(1, 0, 0, b"ch1!", 4, channel=1)) + chunk(0, frame(2, 0, 0, b"ch0!", 4)))
    write(t, "wrong_size", one + chunk(0, frame(0, 0, 0, b"ABCD", 12)))
    write(t, "empty_message", bytes([0x00, 0x01, 0, 0]) + chunk(0, frame(0, 0, 0, b"", 0)))


# ---- fuzz_store: [mode][request bytes]
def req(payload):
    return struct.pack("<I", len(payload)) + payload


def s(b):
    return struct.pack("<I", len(b)) + b


def store():
    t = "fuzz_store"
    setr = req(b"\x01" + s(b"key") + s(b"value"))
    wait = req(b"\x02" + struct.pack("<II", 100, 1) + s(b"key"))
    write(t, "set_then_wait", b"\x01" + setr + wait)
    write(t, "set_if_absent", b"\x01" + req(b"\x03" + s(b"k") + s(b"a")) + req(b"\x03" + s(b"k") + s(b"b")))
    write(t, "wait_pending_kept_open", b"\x03" + req(b"\x02" + struct.pack("<II", 60000, 2) + s(b"a") + s(b"b")) + setr)
    write(t, "wait_missing_times_out", b"\x01" + req(b"\x02" + struct.pack("<II", 1, 1) + s(b"nope")))
    write(t, "unknown_op", b"\x01" + req(b"\x09abc"))
    write(t, "truncated_string", b"\x01" + req(b"\x01" + struct.pack("<I", 1000) + b"short"))
    write(t, "huge_length", b"\x01" + struct.pack("<I", 0xFFFFFFF0) + b"x" * 8)
    write(t, "many_keys", b"\x01" + req(b"\x02" + struct.pack("<II", 1, 100000)))
    write(t, "bad_auth", b"\x00" + bytes(48) + setr)
    write(t, "half_request_open", b"\x03" + setr[:7])


# ---- fuzz_hellos: [count][ctl][u8 len][bytes]...
HELLO_MAGIC, JOB = 0x58535231, 0x6A6F622D66757A7A


def hello(stream=0, recv_below=0, rank=3, channel=0, job=JOB, magic=HELLO_MAGIC):
    return struct.pack("<IiiIQQ", magic, rank, channel, stream, job, recv_below)


def caller(ctl, data):
    return bytes([ctl, len(data)]) + data


def hellos():
    t = "fuzz_hellos"
    write(t, "valid", bytes([0]) + caller(0, hello()))
    write(t, "valid_stream1_acks", bytes([0]) + caller(2, hello(stream=1, recv_below=2)))
    write(t, "stream_out_of_range", bytes([0]) + caller(0, hello(stream=2)))
    write(t, "other_job", bytes([0]) + caller(0, hello(job=1)))
    write(t, "unknown_link", bytes([0]) + caller(0, hello(rank=4)))
    write(t, "bad_magic", bytes([0]) + caller(0, hello(magic=0x58535232)))
    write(t, "partial_then_eof", bytes([0]) + caller(2, hello()[:20]))
    write(t, "probe", bytes([0]) + caller(4, b""))
    write(t, "fixed_up", bytes([0]) + caller(1, bytes(32)))
    write(t, "bad_then_valid", bytes([1]) + caller(0, hello(job=7)) + caller(0, hello(stream=1)))
    write(t, "valid_then_frame", bytes([0]) + caller(0, hello() + frame(0, 0, 0, b"hi", 2)[:100]))
    write(t, "recv_below_too_far", bytes([0]) + caller(0, hello(recv_below=1 << 40)))


# ---- fuzz_codecs: [mode][codec][type][block][level][u16 count][rest]
CODECS = ["none", "lz4", "zstd", "bf16", "fp16", "int8", "fp8", "int4"]
FLOAT32, FLOAT16, BFLOAT16, INT32 = 7, 6, 9, 2


def codecs():
    t = "fuzz_codecs"
    floats = struct.pack("<16f", *[0.5 * i - 3 for i in range(16)])
    for ci, name in enumerate(CODECS):
        for ti, tname in ((FLOAT32, "f32"), (INT32, "i32")):
            write(t, f"roundtrip_{name}_{tname}", bytes([2, ci, ti, 0, 0]) + struct.pack("<H", 16) + floats)
        write(t, f"header_{name}_f32", bytes([1, ci, FLOAT32, 0, 0]) + struct.pack("<H", 16) + bytes([0]) + bytes(72))
        write(t, f"raw_{name}", bytes([0, ci, FLOAT32, 0, 0]) + struct.pack("<H", 4) + bytes(40))
    write(t, "zero_map_lz4", bytes([1, 1, FLOAT32, 0, 0]) + struct.pack("<H", 16) + bytes([2]) + bytes([0x01, 0x80]) + floats[:8])
    write(t, "int8_nan_scale", bytes([1, 5, FLOAT32, 0, 0]) + struct.pack("<H", 4) + bytes([0]) + struct.pack("<f", float("nan")) + bytes(4))


# ---- fuzz_topology: the file's text
def topology():
    t = "fuzz_topology"
    write(t, "two_sites", b"rank=0 site=0 domain=a\nrank=1 site=0 domain=a\nrank=2 site=1 domain=b\nrank=3 site=1 domain=b\n")
    write(t, "local_and_comments", b"# two domains\nrank=1 site=0 domain=n0 local=0 # first\nrank=0 site=0 domain=n0 local=1\n\n")
    write(t, "uneven", b"rank=0 site=0 domain=x\nrank=1 site=1 domain=y\nrank=2 site=1 domain=z\n")
    write(t, "duplicate_rank", b"rank=0 site=0 domain=a\nrank=0 site=0 domain=a\n")
    write(t, "missing_domain", b"rank=0 site=0\n")
    write(t, "unknown_key", b"rank=0 site=0 domain=a color=red\n")
    write(t, "gap", b"rank=0 site=0 domain=a\nrank=5 site=0 domain=a\n")
    write(t, "big_number", b"rank=16777216 site=0 domain=a\n")


# ---- fuzz_params: values of the registry's variables in order, '\n'-separated; '\x01' unset
def params():
    t = "fuzz_params"
    # (macro, name, kind or quoted default); a CHOICE or RANGE is set to its default.
    entries = re.findall(r'^XSITE_(PARAM|CHOICE|RANGE|EXTERNAL)\(\w+, "(\w+)"(?:, (\w+|"[^"]*"))?',
                         open(os.path.join(ROOT, "..", "..", "src", "util", "params.def")).read(), re.M)
    names = [(n, k if m == "PARAM" else "String" if m == "EXTERNAL" else m.title()) for m, n, k in entries]
    defaults = {n: k.strip('"').encode() for m, n, k in entries if m in ("CHOICE", "RANGE")}
    unset = [b"\x01"] * len(names)
    write(t, "all_unset", b"\n".join(unset))
    sample = {"Int": b"42", "Size": b"4M", "Double": b"1.5", "String": b"auto"}
    write(t, "all_set", b"\n".join(defaults.get(n) or sample.get(k, b"x") for n, k in names))
    bad = {"Int": b"12x", "Size": b"9999999999G", "Double": b"-1", "String": b""}
    for kind in ("Int", "Size", "Double"):
        vals = [bad[kind] if k == kind else b"\x01" for _, k in names]
        write(t, f"bad_{kind.lower()}", b"\n".join(vals))
    for i, v in enumerate([b"256K", b"1G", b"0", b"8589934591G", b"-1", b"k", b" 12", b"0x10"]):
        write(t, f"size_{i}", v + b"\n" + b"\n".join(unset[1:]))


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    for f in (wan_frames, store, hellos, codecs, topology, params):
        f()


if __name__ == "__main__":
    main()
