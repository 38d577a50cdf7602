"""The server side of the Xet upload protocol (what hf_xet 1.8 sends).

Facts this module relies on (see ../shared/docs/hub-protocol.md and the public xet-core
spec: hashing.md, xorb.md, shard.md):

* A hash is 32 raw bytes; its string form prints them as four little-endian u64 words,
  i.e. each 8-byte group byte-reversed (:func:`hash_to_hex`, :func:`hex_to_hash`).
* chunk hash = blake3 keyed with DATA_KEY over the uncompressed chunk; xorb hash = the
  root of the aggregated Merkle tree over (chunk hash, size); file hash = blake3 keyed
  with 32 zero bytes over that root; term verification hash = blake3 keyed with
  VERIFICATION_KEY over the concatenated raw chunk hashes of the term's range.
* A xorb is a sequence of (8-byte header, compressed bytes); uploaded xorbs carry no
  footer, so the chunk headers are walked. Compression 0 = none, 1 = LZ4 frame,
  2 = LZ4 frame of the 4-way byte-grouped data.
* A shard is a 48-byte header, file-info blocks up to a bookend (32 x 0xFF), CAS-info
  blocks up to a bookend, and (in uploads) no footer. The sha256 in the metadata
  extension is stored like any other hash (byte-reversed groups).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

import lz4.block
import lz4.frame
import numpy as np
from blake3 import blake3

DATA_KEY = bytes([102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16,
                  155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41])
INTERNAL_NODE_KEY = bytes([1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83,
                           111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63])
VERIFICATION_KEY = bytes([127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38,
                          213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195])
ZERO_KEY = bytes(32)
BOOKEND = b"\xff" * 32
SHARD_HEADER_SIZE = 48
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA_EXT = 1 << 30
MAX_XORB_BYTES = 64 * 1024 * 1024 + 1024 * 1024  # 64 MiB serialized, with slack for headers
MAX_CHUNK_BYTES = 128 * 1024 * 4  # generous: the spec says 128 KiB


class XetFormatError(ValueError):
    """A xorb or shard that cannot be parsed or does not match its hashes."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def hash_to_hex(raw: bytes) -> str:
    return b"".join(raw[i:i + 8][::-1] for i in (0, 8, 16, 24)).hex()


def hex_to_hash(text: str) -> bytes:
    if len(text) != 64:
        raise XetFormatError("InvalidHash", f"hash {text!r} is not 64 hex characters")
    try:
        return b"".join(bytes.fromhex(text[i:i + 16])[::-1] for i in (0, 16, 32, 48))
    except ValueError as exc:
        raise XetFormatError("InvalidHash", f"hash {text!r} is not hex") from exc


def chunk_hash(data: bytes) -> bytes:
    return blake3(data, key=DATA_KEY).digest()


def _next_cut(nodes: list[tuple[bytes, int]], start: int) -> int:
    n = len(nodes) - start
    if n <= 2:
        return start + n
    end = min(9, n)
    for i in range(2, end):
        if int.from_bytes(nodes[start + i][0][24:32], "little") % 4 == 0:
            return start + i + 1
    return start + end


def merkle_root(nodes: list[tuple[bytes, int]]) -> bytes:
    """Root of xet's aggregated Merkle tree over (raw hash, size) leaves."""
    if not nodes:
        return bytes(32)
    level = list(nodes)
    while len(level) > 1:
        out = []
        i = 0
        while i < len(level):
            j = _next_cut(level, i)
            group = level[i:j]
            text = "".join(f"{hash_to_hex(h)} : {s}\n" for h, s in group)
            out.append((blake3(text.encode(), key=INTERNAL_NODE_KEY).digest(), sum(s for _, s in group)))
            i = j
        level = out
    return level[0][0]


def file_hash(nodes: list[tuple[bytes, int]]) -> bytes:
    if not nodes:
        return bytes(32)
    return blake3(merkle_root(nodes), key=ZERO_KEY).digest()


def verification_hash(chunk_hashes: list[bytes]) -> bytes:
    return blake3(b"".join(chunk_hashes), key=VERIFICATION_KEY).digest()


# --- xorbs -------------------------------------------------------------------------------

@dataclass
class ChunkInfo:
    offset: int  # of the compressed data (after the header) inside the xorb
    compressed_size: int
    compression: int
    size: int  # uncompressed
    hash: bytes = b""


def _ungroup4(data: bytes) -> bytes:
    n = len(data)
    base, rem = divmod(n, 4)
    src = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(n, dtype=np.uint8)
    pos = 0
    body = out[:4 * base].reshape(base, 4) if base else None
    for g in range(4):
        size = base + (1 if g < rem else 0)
        group = src[pos:pos + size]
        if base:
            body[:, g] = group[:base]
        if g < rem:
            out[4 * base + g] = group[base]
        pos += size
    return out.tobytes()


def group4(data: bytes) -> bytes:
    """The inverse of :func:`_ungroup4` (used by tests to build type-2 chunks)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    n = len(arr)
    base, rem = divmod(n, 4)
    parts = []
    for g in range(4):
        part = arr[g:4 * base:4].tobytes()
        if g < rem:
            part += bytes([arr[4 * base + g]])
        parts.append(part)
    return b"".join(parts)


def decompress_chunk(compression: int, payload: bytes, size: int) -> bytes:
    try:
        if compression == 0:
            data = payload
        elif compression in (1, 2):
            if payload[:4] == b"\x04\x22\x4d\x18":
                # bounded: a small frame can expand 255-fold, never past what the header declares
                d = lz4.frame.LZ4FrameDecompressor()
                data = d.decompress(bytes(payload), max_length=size + 1)
                if len(data) > size:
                    raise XetFormatError("InvalidXorb", f"chunk decompresses past the {size} bytes its header says")
            else:
                data = lz4.block.decompress(payload, uncompressed_size=size)
            if compression == 2:
                data = _ungroup4(data)
        else:
            raise XetFormatError("InvalidXorb", f"unknown chunk compression type {compression}")
    except XetFormatError:
        raise
    except Exception as exc:  # lz4 raises RuntimeError on corrupt input
        raise XetFormatError("InvalidXorb", f"chunk does not decompress: {exc}") from exc
    if len(data) != size:
        raise XetFormatError("InvalidXorb", f"chunk decompressed to {len(data)} bytes, header says {size}")
    return data


def walk_xorb(buf: bytes | memoryview) -> list[ChunkInfo]:
    """Chunk headers of a serialized xorb (no decompression)."""
    chunks = []
    pos = 0
    n = len(buf)
    while pos < n:
        if n - pos >= 7 and bytes(buf[pos:pos + 7]) == b"XETBLOB":  # optional footer: stop
            break
        if n - pos < 8:
            raise XetFormatError("InvalidXorb", f"truncated chunk header at byte {pos}")
        version = buf[pos]
        csize = int.from_bytes(buf[pos + 1:pos + 4], "little")
        ctype = buf[pos + 4]
        usize = int.from_bytes(buf[pos + 5:pos + 8], "little")
        if version != 0:
            raise XetFormatError("InvalidXorb", f"chunk {len(chunks)}: unknown version {version}")
        if usize > MAX_CHUNK_BYTES:
            raise XetFormatError("InvalidXorb", f"chunk {len(chunks)}: {usize} bytes, over the {MAX_CHUNK_BYTES} limit")
        if pos + 8 + csize > n:
            raise XetFormatError("InvalidXorb", f"chunk {len(chunks)} runs past the end of the xorb")
        chunks.append(ChunkInfo(pos + 8, csize, ctype, usize))
        pos += 8 + csize
    return chunks


def index_xorb(buf: bytes | memoryview, expected_hex: str) -> list[ChunkInfo]:
    """Parse a xorb, hash every chunk and check the Merkle root against ``expected_hex``."""
    if len(buf) > MAX_XORB_BYTES:
        raise XetFormatError("XorbTooLarge", f"xorb is {len(buf)} bytes, over the 64 MiB limit")
    chunks = walk_xorb(buf)
    if not chunks:
        raise XetFormatError("InvalidXorb", "xorb has no chunks")
    for c in chunks:
        data = decompress_chunk(c.compression, buf[c.offset:c.offset + c.compressed_size], c.size)
        c.hash = chunk_hash(data)
    root = merkle_root([(c.hash, c.size) for c in chunks])
    if hash_to_hex(root) != expected_hex:
        raise XetFormatError("XorbHashMismatch",
                             f"xorb content hashes to {hash_to_hex(root)}, not {expected_hex}")
    return chunks


def encode_index(chunks: list[ChunkInfo]) -> bytes:
    return b"".join(struct.pack("<QIBI", c.offset, c.compressed_size, c.compression, c.size) + c.hash
                    for c in chunks)


def decode_index(raw: bytes) -> list[ChunkInfo]:
    rec = struct.calcsize("<QIBI") + 32
    out = []
    for i in range(0, len(raw), rec):
        off, cs, ct, us = struct.unpack_from("<QIBI", raw, i)
        out.append(ChunkInfo(off, cs, ct, us, raw[i + rec - 32:i + rec]))
    return out


def build_xorb(chunks: list[bytes], compression: int = 0) -> tuple[bytes, str]:
    """Serialize ``chunks`` as a xorb (used by tests and tools); returns (bytes, hash hex)."""
    out = bytearray()
    nodes = []
    for data in chunks:
        if compression == 0:
            payload = data
        elif compression == 1:
            payload = lz4.frame.compress(data)
        else:
            payload = lz4.frame.compress(group4(data))
        out += bytes([0]) + len(payload).to_bytes(3, "little") + bytes([compression]) + len(data).to_bytes(3, "little")
        out += payload
        nodes.append((chunk_hash(data), len(data)))
    return bytes(out), hash_to_hex(merkle_root(nodes))


# --- shards ------------------------------------------------------------------------------

@dataclass
class Term:
    xorb: str  # hex
    size: int
    start: int
    end: int
    verification: bytes | None = None


@dataclass
class FileEntry:
    file_hash: str  # hex
    terms: list[Term] = field(default_factory=list)
    sha256: str | None = None  # hex


@dataclass
class Shard:
    files: list[FileEntry]
    xorbs: dict[str, list[tuple[bytes, int]]]  # hex -> [(chunk hash raw, size)] from the CAS section


def parse_shard(buf: bytes) -> Shard:
    n = len(buf)

    def need(pos: int, size: int, what: str):
        if pos + size > n:
            raise XetFormatError("InvalidShard", f"shard truncated in {what} at byte {pos}")

    need(0, SHARD_HEADER_SIZE, "header")
    version = struct.unpack_from("<Q", buf, 32)[0]
    if version != 2:
        raise XetFormatError("InvalidShard", f"shard header version {version}, expected 2")
    pos = SHARD_HEADER_SIZE
    files = []
    while True:
        need(pos, 48, "file info")
        fh = buf[pos:pos + 32]
        if fh == BOOKEND:
            pos += 48
            break
        flags, count = struct.unpack_from("<II", buf, pos + 32)
        pos += 48
        entry = FileEntry(hash_to_hex(fh))
        need(pos, 48 * count, "file terms")
        for _ in range(count):
            ch = buf[pos:pos + 32]
            _cflags, usize, start, end = struct.unpack_from("<IIII", buf, pos + 32)
            if end <= start:
                raise XetFormatError("InvalidShard", f"empty chunk range [{start}, {end}) in a shard term")
            entry.terms.append(Term(hash_to_hex(ch), usize, start, end))
            pos += 48
        if flags & FLAG_VERIFICATION:
            need(pos, 48 * count, "verification entries")
            for t in entry.terms:
                t.verification = buf[pos:pos + 32]
                pos += 48
        if flags & FLAG_METADATA_EXT:
            need(pos, 48, "metadata extension")
            entry.sha256 = hash_to_hex(buf[pos:pos + 32])
            pos += 48
        files.append(entry)
    xorbs: dict[str, list[tuple[bytes, int]]] = {}
    while pos + 48 <= n:
        ch = buf[pos:pos + 32]
        if ch == BOOKEND:
            break
        _flags, count, _nbytes, _ondisk = struct.unpack_from("<IIII", buf, pos + 32)
        pos += 48
        need(pos, 48 * count, "CAS entries")
        entries = []
        for _ in range(count):
            entries.append((buf[pos:pos + 32], struct.unpack_from("<I", buf, pos + 36)[0]))
            pos += 48
        xorbs[hash_to_hex(ch)] = entries
    return Shard(files, xorbs)


def build_shard(files: list[tuple[bytes, list[tuple[str, int, int, int, list[bytes]]]]]) -> bytes:
    """Serialize a minimal upload shard (tests): files = [(content, [(xorb hex, unpacked bytes, start, end,
    chunk hashes of the range)])]."""
    out = bytearray(b"HFRepoMetaData\x00" + bytes(17))
    out += struct.pack("<QQ", 2, 0)
    for content, terms in files:
        nodes = []
        for _x, _u, _s, _e, hashes in terms:
            nodes += hashes
        fh = file_hash(nodes)
        out += fh + struct.pack("<II", FLAG_VERIFICATION | FLAG_METADATA_EXT, len(terms)) + bytes(8)
        for xh, usize, start, end, _h in terms:
            out += hex_to_hash(xh) + struct.pack("<IIII", 0, usize, start, end)
        for _x, _u, _s, _e, hashes in terms:
            out += verification_hash([h for h, _ in hashes]) + bytes(16)
        out += hex_to_hash(hashlib.sha256(content).hexdigest()) + bytes(16)
    out += BOOKEND + bytes(16)
    out += BOOKEND + bytes(16)
    return bytes(out)


# --- downloads: the reconstruction of a file ---------------------------------------------

@dataclass
class FetchRange:
    """Chunks ``[start, end)`` of one xorb and their bytes ``[byte_start, byte_end)`` (headers
    included) in the serialized xorb: what one ranged GET of the xorb returns."""
    start: int
    end: int
    byte_start: int
    byte_end: int


def plan_reconstruction(terms: list[Term], index_of, first: int, end: int
                        ) -> tuple[int, list[dict], dict[str, list[FetchRange]]]:
    """The terms and xorb ranges a client must fetch for bytes ``[first, end)`` of a file
    (``0 <= first < end <= file size``), as the CAS reconstruction API answers them: the
    first and last terms are cut to the chunks that hold the range, ``offset_into_first_range``
    is where the range starts inside the first cut term, and overlapping or touching chunk
    ranges of one xorb are merged into one fetch. ``index_of(xorb)`` gives its chunk list."""
    out_terms: list[dict] = []
    ranges: dict[str, list[FetchRange]] = {}
    offset = 0
    pos = 0
    for term in terms:
        t_start, t_end = pos, pos + term.size
        pos = t_end
        if t_end <= first:
            continue
        if t_start >= end:
            break
        index = index_of(term.xorb)
        a, b = term.start, term.end
        s, e = t_start, t_end  # file offsets of chunk a's start and chunk b-1's end
        while s + index[a].size <= first:  # chunks wholly before the range
            s += index[a].size
            a += 1
        while e - index[b - 1].size >= end:  # chunks wholly after it
            e -= index[b - 1].size
            b -= 1
        if not out_terms:
            offset = first - s
        out_terms.append({"hash": term.xorb, "unpacked_length": e - s, "range": {"start": a, "end": b}})
        ranges.setdefault(term.xorb, []).append(
            FetchRange(a, b, index[a].offset - 8, index[b - 1].offset + index[b - 1].compressed_size))
    merged: dict[str, list[FetchRange]] = {}
    for h, rs in ranges.items():
        rs.sort(key=lambda r: r.start)
        acc = [rs[0]]
        for r in rs[1:]:
            if r.start <= acc[-1].end:
                acc[-1] = FetchRange(acc[-1].start, max(acc[-1].end, r.end), acc[-1].byte_start,
                                     max(acc[-1].byte_end, r.byte_end))
            else:
                acc.append(r)
        merged[h] = acc
    return offset, out_terms, merged

