"""Content-addressed objects of the hub's storage: blobs (file contents named by their
sha256, verified on write) and Xet xorbs with their chunk index; an uploaded Xet shard is
turned into blobs by rebuilding each file from the xorbs and checking its hashes, and each
file so verified keeps its Xet record (its terms), from which Xet downloads are served."""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import tempfile
from pathlib import Path

from dismai_data.hub import xet
from dismai_data.hub.common import HEX64, HubError, atomic_write, fsync_dir, fsync_file


class BlobWriter:
    """Stream bytes into a temporary file while hashing; ``commit`` verifies and publishes."""

    def __init__(self, storage: "ObjectStore", limit: int | None = None):
        self.storage = storage
        self.limit = limit
        fd, self.tmp = tempfile.mkstemp(dir=storage.tmp_dir, prefix="blob.")
        self.f = os.fdopen(fd, "wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            raise HubError(413, "PayloadTooLarge", f"upload is larger than the limit of {self.limit} bytes")
        self.sha.update(data)
        self.f.write(data)

    def commit(self, expected_sha: str | None = None, expected_size: int | None = None) -> tuple[str, int]:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        digest = self.sha.hexdigest()
        if expected_sha is not None and digest != expected_sha:
            self.abort()
            raise HubError(400, "HashMismatch", f"content has sha256 {digest}, expected {expected_sha}")
        if expected_size is not None and self.size != expected_size:
            self.abort()
            raise HubError(400, "SizeMismatch", f"content has {self.size} bytes, expected {expected_size}")
        dest = self.storage.blob_path(digest)
        if dest.exists():
            self.abort()
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, dest)
            fsync_dir(dest.parent)
        return digest, self.size

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


class ObjectStore:
    """Blobs and xorbs under ``root`` (a mixin of :class:`dismai_data.hub.storage.Storage`:
    needs ``root``, ``tmp_dir`` and ``max_upload_bytes``)."""

    # ---- blobs ------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256[2:4] / sha256

    def has_blob(self, sha256: str) -> bool:
        return bool(HEX64.match(sha256 or "")) and self.blob_path(sha256).is_file()

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self, self.max_upload_bytes)

    def put_bytes(self, data: bytes) -> str:
        w = self.blob_writer()
        try:
            w.write(data)
        except BaseException:
            w.abort()
            raise
        return w.commit()[0]

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    # ---- xorbs ------------------------------------------------------------------------
    def xorb_path(self, h: str) -> Path:
        return self.root / "xorbs" / h[:2] / h

    def has_xorb(self, h: str) -> bool:
        return bool(HEX64.match(h)) and (self.xorb_path(h).with_suffix(".idx")).is_file()

    def put_xorb(self, h: str, data: bytes) -> bool:
        if not HEX64.match(h):
            raise HubError(400, "InvalidHash", f"xorb hash {h!r} is not 64 lowercase hex characters")
        if self.has_xorb(h):
            return False
        try:
            chunks = xet.index_xorb(memoryview(data), h)
        except xet.XetFormatError as exc:
            raise HubError(400, exc.code, str(exc)) from exc
        # Not fsynced here (it would serialise the upload on the disk): every xorb a shard
        # references is fsynced before that shard is acknowledged, hence before any commit uses it.
        # A xorb lost to a power cut before its shard is caught there (XorbNotFound, or the
        # sha256 check of the rebuilt file).
        path = self.xorb_path(h)
        atomic_write(path, data, self.tmp_dir, durable=False)
        atomic_write(path.with_suffix(".idx"), xet.encode_index(chunks), self.tmp_dir, durable=False)
        return True

    def xorb_index(self, h: str) -> list[xet.ChunkInfo]:
        return xet.decode_index(self.xorb_path(h).with_suffix(".idx").read_bytes())

    def ingest_shard(self, data: bytes, owned=lambda sha: False) -> list[tuple[str, int]]:
        """Rebuild every file of an uploaded shard from stored xorbs, check its xet file hash,
        term verification hashes and sha256, and store it as an ordinary blob. A file whose
        sha256 is already stored *and* ``owned(sha)`` (the uploader proved possession before)
        is not rebuilt again. Files are rebuilt in parallel threads (hashing and I/O release
        the GIL)."""
        try:
            shard = xet.parse_shard(data)
        except xet.XetFormatError as exc:
            raise HubError(400, exc.code, str(exc)) from exc
        referenced = set()
        for entry in shard.files:  # cheap checks first, so a bad shard fails before any work
            for term in entry.terms:
                if not self.has_xorb(term.xorb):
                    raise HubError(400, "XorbNotFound", f"shard references xorb {term.xorb}, never uploaded")
                referenced.add(term.xorb)
        for h in referenced:  # make the xorbs durable before acknowledging the shard
            fsync_file(self.xorb_path(h))
            fsync_file(self.xorb_path(h).with_suffix(".idx"))
        todo = [e for e in shard.files if not (e.sha256 and self.has_blob(e.sha256) and owned(e.sha256))]
        done = {e.sha256: (e.sha256, self.blob_path(e.sha256).stat().st_size) for e in shard.files if e not in todo}
        if len(todo) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(4, len(todo))) as ex:
                results = list(ex.map(self._rebuild_file, todo))
        else:
            results = [self._rebuild_file(e) for e in todo]
        rebuilt = dict(zip([id(e) for e in todo], results))
        for e in todo:  # only files whose terms were just verified get a download record
            self._record_xet_file(e, *rebuilt[id(e)])
        return [rebuilt[id(e)] if id(e) in rebuilt else done[e.sha256] for e in shard.files]

    # ---- Xet file records (downloads) ---------------------------------------------------
    def _xet_record_path(self, file_hash: str) -> Path:
        return self.root / "xetfiles" / file_hash[:2] / f"{file_hash}.json"

    def _xet_by_sha_path(self, sha256: str) -> Path:
        return self.root / "xetfiles" / "sha256" / sha256[:2] / sha256

    def _record_xet_file(self, entry: "xet.FileEntry", sha256: str, size: int) -> None:
        """Keep the verified terms of a file rebuilt from a shard, and its sha256 -> Xet hash."""
        if size == 0:
            return
        rec = {"sha256": sha256, "size": size, "terms": [[t.xorb, t.start, t.end, t.size] for t in entry.terms]}
        atomic_write(self._xet_record_path(entry.file_hash), json.dumps(rec).encode(), self.tmp_dir)
        atomic_write(self._xet_by_sha_path(sha256), entry.file_hash.encode(), self.tmp_dir)

    def blob_xet_hash(self, sha256: str) -> str | None:
        """The Xet file hash of a blob uploaded through Xet (None for LFS or regular uploads)."""
        try:
            h = self._xet_by_sha_path(sha256).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return h if HEX64.match(h) else None

    def xet_file(self, file_hash: str) -> dict | None:
        """``{sha256, size, terms: [xet.Term]}`` of a file uploaded through Xet, else None."""
        if not HEX64.match(file_hash or ""):
            return None
        try:
            rec = json.loads(self._xet_record_path(file_hash).read_bytes())
        except FileNotFoundError:
            return None
        rec["terms"] = [xet.Term(x, size, a, b) for x, a, b, size in rec["terms"]]
        return rec

    def _rebuild_file(self, entry: "xet.FileEntry") -> tuple[str, int]:
        w = self.blob_writer()
        try:
            nodes = []
            open_xorbs: dict[str, tuple] = {}
            for term in entry.terms:
                if term.xorb not in open_xorbs:
                    open_xorbs[term.xorb] = (self.xorb_index(term.xorb), self.xorb_path(term.xorb))
                index, path = open_xorbs[term.xorb]
                if term.end > len(index):
                    raise HubError(400, "ShardVerificationFailed",
                                   f"chunk range [{term.start}, {term.end}) past the {len(index)} chunks "
                                   f"of xorb {term.xorb}")
                chunks = index[term.start:term.end]
                if sum(c.size for c in chunks) != term.size:
                    raise HubError(400, "ShardVerificationFailed",
                                   f"term of xorb {term.xorb} says {term.size} bytes, chunks hold "
                                   f"{sum(c.size for c in chunks)}")
                if term.verification is not None and \
                        xet.verification_hash([c.hash for c in chunks]) != term.verification:
                    raise HubError(400, "ShardVerificationFailed",
                                   f"verification hash of a term of xorb {term.xorb} does not match")
                with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    view = memoryview(mm)
                    payload = None
                    try:
                        if chunks[-1].offset + chunks[-1].compressed_size > len(mm):
                            raise HubError(400, "ShardVerificationFailed", f"xorb {term.xorb} is truncated")
                        for c in chunks:
                            payload = view[c.offset:c.offset + c.compressed_size]
                            w.write(payload if c.compression == 0 else
                                    xet.decompress_chunk(c.compression, payload, c.size))
                            nodes.append((c.hash, c.size))
                    finally:
                        del payload
                        view.release()
            got = xet.hash_to_hex(xet.file_hash(nodes))
            if got != entry.file_hash:
                raise HubError(400, "ShardVerificationFailed",
                               f"file rebuilt from the xorbs has xet hash {got}, the shard says {entry.file_hash}")
            return w.commit(expected_sha=entry.sha256)
        except HubError as exc:
            w.abort()
            if exc.code == "HashMismatch":
                exc.code = "ShardVerificationFailed"
            raise
        except BaseException:
            w.abort()
            raise
