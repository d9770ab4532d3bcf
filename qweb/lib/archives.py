"""Safe reading of uploaded repository archives (.zip, .tar, .tar.gz/.tgz, .tar.xz).

An upload is read completely into a private temporary folder and validated as a whole
before the caller writes anything into a repository: every refusal raises ``ArchiveError``
with one line a user can act on, and removes the temporary folder. Nothing is ever
extracted by path onto the server's disk; contents are stored under numbered names and
only the validated, normalised paths travel on to the git store.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from qweb.lib.gitpaths import path_refusal

MODE_FILE = "100644"
MODE_EXECUTABLE = "100755"
MODE_SYMLINK = "120000"

_MB = 1024 * 1024
_CHUNK = 64 * 1024
# tarfile reads pax and GNU long-name headers with a single read(); anything bigger than
# this is not a real header but an attempt to make the server buffer a huge block.
_MAX_SINGLE_READ = 1 * _MB
_MAX_LINK_TARGET = 4096
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


class ArchiveError(Exception):
    """An upload was refused; ``message`` is one line meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ArchiveLimits:
    """Upper bounds for one upload; every default is safe for a shared server."""

    max_archive_bytes: int = 200 * _MB
    max_total_bytes: int = 1024 * _MB
    max_files: int = 50_000
    # Directories, dropped .git objects and headers are entries too; bounding them stops an
    # archive of millions of empty members from tying up the server.
    max_entries: int = 200_000
    max_file_bytes: int = 50 * _MB
    max_ratio: float = 200.0
    # Tiny archives of small, repetitive files legitimately compress very well, so the ratio
    # is only judged once this much has been unpacked.
    ratio_floor_bytes: int = 1 * _MB


@dataclass(frozen=True)
class ArchiveEntry:
    """One validated file or symlink: a repository path, a git mode and its content."""

    path: str
    mode: str
    size: int
    source: Path | None = None
    offset: int = 0
    link_target: str | None = None

    def open(self) -> BinaryIO:
        """Open the entry's content (a symlink's content is its target, as git stores it)."""
        if self.link_target is not None:
            return io.BytesIO(self.link_target.encode())
        assert self.source is not None
        return io.BufferedReader(_Slice(self.source, self.offset, self.size))

    def read_bytes(self) -> bytes:
        """Return the whole content; meant for tests and small files."""
        with self.open() as handle:
            return handle.read()


class _Slice(io.RawIOBase):
    """Read-only view of ``size`` bytes at ``offset`` in the shared contents file."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self._file = path.open("rb")
        self._file.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        view = memoryview(buffer).cast("B")[: self._left]  # type: ignore[arg-type]
        count = self._file.readinto(view) if len(view) else 0
        self._left -= count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass
class ExtractedArchive:
    """The validated entries of an upload; close it (or use ``with``) to remove its files."""

    entries: list[ArchiveEntry]
    workdir: Path
    total_bytes: int = 0
    stripped_prefix: str | None = None
    dropped_git_dir: bool = False
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Remove the temporary folder holding the contents."""
        if not self._closed:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._closed = True

    def __enter__(self) -> ExtractedArchive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_archive(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    filename: str,
    limits: ArchiveLimits | None = None,
    temp_dir: str | os.PathLike[str] | None = None,
) -> ExtractedArchive:
    """Validate an uploaded archive and return its entries, or raise ``ArchiveError``."""
    limits = limits or ArchiveLimits()
    workdir = Path(tempfile.mkdtemp(prefix="qweb-archive-", dir=temp_dir))
    try:
        return _Reader(workdir, limits).read(source, filename)
    except ArchiveError:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        EOFError,
        lzma.LZMAError,
        zlib.error,
        gzip.BadGzipFile,
        NotImplementedError,
        struct.error,
        ValueError,
        OSError,
    ) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ArchiveError(
            "The archive could not be read: it is damaged or uses an unsupported feature."
        ) from exc
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


# --- type detection ---------------------------------------------------------------------

_KINDS_BY_SUFFIX = (
    (".tar.gz", "gzip"),
    (".tgz", "gzip"),
    (".tar.xz", "xz"),
    (".txz", "xz"),
    (".tar", "tar"),
    (".zip", "zip"),
)
_KIND_NAMES = {
    "zip": "a zip file",
    "gzip": "a gzip file",
    "xz": "an xz file",
    "bzip2": "a bzip2 file",
    "tar": "a tar file",
    "7z": "a 7-Zip file",
    "rar": "a RAR file",
    "unknown": "not an archive qweb recognises",
}


def _expected_kind(filename: str) -> tuple[str, str]:
    lowered = filename.lower()
    for suffix, kind in _KINDS_BY_SUFFIX:
        if lowered.endswith(suffix):
            return kind, suffix
    raise ArchiveError("Unsupported file type: upload a .zip, .tar, .tar.gz or .tar.xz archive.")


def _is_tar_header(block: bytes) -> bool:
    # POSIX ustar ("ustar\0") and GNU tar ("ustar  \0") both carry "ustar" at offset 257.
    return len(block) >= 262 and block[257:262] == b"ustar"


def _sniff(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"PK\x05\x06"):
        raise ArchiveError("The archive is empty.")
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"Rar!"):
        return "rar"
    if _is_tar_header(head):
        return "tar"
    return "unknown"


# --- byte counting ------------------------------------------------------------------------


class _CountingFile(io.FileIO):
    """The archive on disk, counting the bytes decompressors actually consume."""

    consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.consumed += len(data or b"")
        return data or b""

    def readinto(self, buffer: object) -> int:
        count = super().readinto(buffer)  # type: ignore[arg-type]
        self.consumed += count or 0
        return count or 0


class _TarStream(io.RawIOBase):
    """The decompressed tar stream, refusing bombs as bytes are produced, not as declared."""

    def __init__(
        self, inner: BinaryIO, raw: _CountingFile, reader: _Reader, *, compressed: bool
    ) -> None:
        self._inner = inner
        self._raw = raw
        self._reader = reader
        self._compressed = compressed
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > _MAX_SINGLE_READ:
            raise ArchiveError("The archive contains an oversized header.")
        data = self._inner.read(size)
        self._advance(self._pos + len(data))
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self._pos + offset
        if whence not in (os.SEEK_SET, os.SEEK_CUR) or target < 0:
            raise ValueError("unsupported seek")
        # Skipped members (dropped .git content) are decompressed by the seek as well, so
        # the stream limit is checked before the work is done.
        self._reader.check_stream_position(target)
        self._inner.seek(target)
        self._advance(target)
        return target

    def _advance(self, position: int) -> None:
        self._pos = position
        self._reader.check_stream_position(position)
        # A plain tar skips dropped members by seeking, which reads nothing: only a
        # decompressor's output can be compared with its input.
        if self._compressed:
            self._reader.check_ratio(position, self._raw.consumed)


# --- the reader ---------------------------------------------------------------------------


def _show(name: str) -> str:
    shown = repr(name)
    return shown if len(shown) <= 120 else shown[:117] + "..."


def _megabytes(count: int) -> str:
    return f"{count / _MB:g} MB"


@dataclass
class _Pending:
    parts: tuple[str, ...]
    mode: str
    size: int
    source: Path | None = None
    offset: int = 0
    link_target: str | None = None


class _Reader:
    def __init__(self, workdir: Path, limits: ArchiveLimits) -> None:
        self.workdir = workdir
        self.limits = limits
        self.files: dict[tuple[str, ...], _Pending] = {}
        self.dirs: set[tuple[str, ...]] = set()
        self.entry_count = 0
        self.total_bytes = 0
        # Every member's content goes into one file, one after the other: creating a file
        # per member costs more than reading it on many filesystems.
        self.contents_path = workdir / "contents"
        self.contents: BinaryIO | None = None
        self.dropped_git = False
        self.archive_size = 0

    # entry points

    def read(self, source: str | os.PathLike[str] | BinaryIO, filename: str) -> ExtractedArchive:
        expected, suffix = _expected_kind(filename)
        path = self._materialise(source)
        size = path.stat().st_size
        if size > self.limits.max_archive_bytes:
            raise ArchiveError(
                f"The archive is larger than the {_megabytes(self.limits.max_archive_bytes)} limit."
            )
        with path.open("rb") as handle:
            head = handle.read(512)
        actual = _sniff(head)
        if actual != expected:
            raise ArchiveError(
                f"The file is named {suffix} but its contents are {_KIND_NAMES[actual]}."
            )
        self.archive_size = size
        try:
            if actual == "zip":
                self._read_zip(path)
            else:
                self._read_tar(path, actual)
        finally:
            if self.contents is not None:
                self.contents.close()
        return self._finish()

    def _materialise(self, source: str | os.PathLike[str] | BinaryIO) -> Path:
        if isinstance(source, str | os.PathLike):
            return Path(source)
        # A file object (e.g. an in-memory upload) is copied into the private folder first,
        # so the archive can be re-read and its size is known before any parsing.
        target = self.workdir / "upload"
        limit = self.limits.max_archive_bytes
        written = 0
        with target.open("xb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise ArchiveError(f"The archive is larger than the {_megabytes(limit)} limit.")
                out.write(chunk)
        return target

    # limits

    def check_stream_position(self, position: int) -> None:
        # Headers and padding take at most about 1.5 KB per member on top of the content.
        cap = self.limits.max_total_bytes + 1536 * self.limits.max_entries
        if position > cap:
            self._too_big()

    def check_ratio(self, produced: int, consumed: int) -> None:
        if produced <= self.limits.ratio_floor_bytes:
            return
        if produced > self.limits.max_ratio * max(consumed, 1):
            raise ArchiveError(
                "The archive expands suspiciously much (compression ratio over "
                f"{self.limits.max_ratio:g}); it looks like a zip bomb."
            )

    def _too_big(self) -> None:
        raise ArchiveError(
            f"The archive unpacks to more than the {_megabytes(self.limits.max_total_bytes)} limit."
        )

    def _count_entry(self) -> None:
        self.entry_count += 1
        if self.entry_count > self.limits.max_entries:
            raise ArchiveError(f"The archive has more than {self.limits.max_entries} entries.")

    def _count_file(self, shown: str, size: int) -> None:
        if len(self.files) + 1 > self.limits.max_files:
            raise ArchiveError(f"The archive has more than {self.limits.max_files} files.")
        self._add_bytes(shown, size)

    def _add_bytes(self, shown: str, size: int) -> None:
        self.total_bytes += size
        if self.total_bytes > self.limits.max_total_bytes:
            self._too_big()

    def _copy_content(self, stream: BinaryIO, shown: str, raw: _CountingFile) -> tuple[int, int]:
        """Append one member's content to the contents file, counting real bytes."""
        if self.contents is None:
            self.contents = self.contents_path.open("xb")
        out = self.contents
        offset = out.tell()
        written = 0
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            if written > self.limits.max_file_bytes:
                raise ArchiveError(
                    f"The file {shown} is larger than the "
                    f"{_megabytes(self.limits.max_file_bytes)} limit."
                )
            if self.total_bytes + written > self.limits.max_total_bytes:
                self._too_big()
            self.check_ratio(self.total_bytes + written, raw.consumed)
            out.write(chunk)
        return offset, written

    # names

    def _parts(self, name: str, *, is_dir: bool = False) -> tuple[str, ...] | None:
        """Split a member name into its components; ``None`` means the archive root itself.

        Only what belongs to archive names is judged here (an absolute name, the ``./`` and
        ``//`` that archivers write); the path itself is judged by ``_check_path``.
        """
        if name == "":
            raise ArchiveError("An entry in the archive has an empty name.")
        shown = _show(name)
        if name.startswith("/"):
            raise ArchiveError(f"The archive entry {shown} is an absolute path.")
        parts = tuple(part for part in name.split("/") if part not in ("", "."))
        if not parts:
            if is_dir:
                return None
            raise ArchiveError(f"The archive entry {shown} has an empty name.")
        return parts

    def _check_path(self, parts: tuple[str, ...], shown: str, *, symlink: bool = False) -> None:
        # The one rule for tree paths: what git refuses (.git as Windows and macOS read it,
        # too), drive letters, backslashes, control characters, "..".
        reason = path_refusal("/".join(parts), symlink=symlink)
        if reason:
            raise ArchiveError(f"The archive entry {shown} {reason}.")

    def _is_git_metadata(self, parts: tuple[str, ...]) -> bool:
        # An uploaded .git folder (or worktree .git file) is the uploader's own repository
        # state: config, hooks, objects. It is never trusted. Case-folded because .GIT is the
        # same folder on the filesystems many uploads come from.
        if any(part.casefold() == ".git" for part in parts):
            self.dropped_git = True
            return True
        return False

    def _check_link_target(self, target: str, shown: str) -> None:
        if target == "":
            raise ArchiveError(f"The symlink {shown} has an empty target.")
        if len(target.encode("utf-8", "surrogatepass")) > _MAX_LINK_TARGET:
            raise ArchiveError(f"The symlink {shown} has a target that is too long.")
        if "\x00" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
            raise ArchiveError(f"The symlink {shown} has a target with a control character.")
        try:
            target.encode("utf-8")
        except UnicodeEncodeError:
            raise ArchiveError(f"The symlink {shown} has a target that is not UTF-8.") from None
        if target.startswith("/") or "\\" in target or _DRIVE_LETTER.match(target):
            raise ArchiveError(f"The symlink {shown} points outside the archive.")

    def _add(self, parts: tuple[str, ...], pending: _Pending, shown: str) -> None:
        if parts in self.files:
            raise ArchiveError(f"The archive contains {shown} more than once.")
        self.files[parts] = pending

    def _add_dir(self, parts: tuple[str, ...] | None) -> None:
        if parts is not None:
            self.dirs.add(parts)

    # zip

    def _read_zip(self, path: Path) -> None:
        with _CountingFile(path, "r") as raw:
            self._precount_zip(raw)
            raw.seek(0)
            with zipfile.ZipFile(raw) as archive:
                for info in archive.infolist():
                    self._read_zip_member(archive, info, raw)

    def _precount_zip(self, raw: _CountingFile) -> None:
        """Count central-directory records before zipfile builds an object for each one."""
        size = self.archive_size
        tail_len = min(size, 65_535 + 22)
        raw.seek(size - tail_len)
        tail = raw.read(tail_len)
        eocd = tail.rfind(b"PK\x05\x06")
        if eocd < 0:
            raise ArchiveError("The zip file is damaged (no central directory).")
        cd_size, cd_offset = struct.unpack("<II", tail[eocd + 12 : eocd + 20])
        locator = eocd - 20
        is_zip64 = cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF
        if is_zip64 and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
            (zip64_at,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
            raw.seek(zip64_at)
            record = raw.read(56)
            if record[:4] == b"PK\x06\x06":
                cd_size, cd_offset = struct.unpack("<QQ", record[40:56])
        raw.seek(cd_offset)
        remaining = min(cd_size, size)
        count = 0
        while remaining >= 46:
            header = raw.read(46)
            if len(header) < 46 or header[:4] != b"PK\x01\x02":
                break
            name_len, extra_len, comment_len = struct.unpack("<HHH", header[28:34])
            skip = name_len + extra_len + comment_len
            raw.seek(skip, os.SEEK_CUR)
            remaining -= 46 + skip
            count += 1
            if count > self.limits.max_entries:
                raise ArchiveError(f"The archive has more than {self.limits.max_entries} entries.")

    def _read_zip_member(
        self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, raw: _CountingFile
    ) -> None:
        self._count_entry()
        # zipfile cuts names at the first NUL; the original name is what must be judged.
        name = info.orig_filename
        unix_mode = (info.external_attr >> 16) if info.create_system == 3 else 0
        file_type = stat.S_IFMT(unix_mode)
        is_dir = name.endswith("/") or stat.S_ISDIR(unix_mode)
        parts = self._parts(name, is_dir=is_dir)
        if parts is not None and self._is_git_metadata(parts):
            return
        shown = _show(name)
        if parts is not None:
            self._check_path(parts, shown, symlink=stat.S_ISLNK(unix_mode) and not is_dir)
        if is_dir:
            self._add_dir(parts)
            return
        assert parts is not None
        if file_type and not (stat.S_ISREG(unix_mode) or stat.S_ISLNK(unix_mode)):
            raise ArchiveError(f"The archive entry {shown} is a device file, FIFO or socket.")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"The archive entry {shown} is password-protected.")
        with archive.open(info) as stream:
            if stat.S_ISLNK(unix_mode):
                data = stream.read(_MAX_LINK_TARGET + 1)
                if len(data) > _MAX_LINK_TARGET:
                    raise ArchiveError(f"The symlink {shown} has a target that is too long.")
                target = data.decode("utf-8", "surrogateescape")
                self._check_link_target(target, shown)
                self._count_file(shown, len(data))
                pending = _Pending(parts, MODE_SYMLINK, len(data), link_target=target)
            else:
                if len(self.files) + 1 > self.limits.max_files:
                    raise ArchiveError(f"The archive has more than {self.limits.max_files} files.")
                offset, written = self._copy_content(stream, shown, raw)
                self._add_bytes(shown, written)
                mode = MODE_EXECUTABLE if unix_mode & 0o111 else MODE_FILE
                pending = _Pending(parts, mode, written, self.contents_path, offset)
        self._add(parts, pending, shown)

    # tar

    def _read_tar(self, path: Path, kind: str) -> None:
        with _CountingFile(path, "r") as raw:
            inner: BinaryIO
            if kind == "gzip":
                inner = gzip.GzipFile(fileobj=raw, mode="rb")
            elif kind == "xz":
                inner = lzma.LZMAFile(raw, mode="rb")  # noqa: SIM115 - closed just below
            else:
                inner = raw
            with contextlib.closing(inner):
                if kind != "tar":
                    # The name promised a tar inside the compression; check before parsing.
                    if not _is_tar_header(inner.read(512)):
                        raise ArchiveError(
                            "The file is named a compressed tar archive but does not "
                            "contain a tar archive."
                        )
                    inner.seek(0)
                stream = _TarStream(inner, raw, self, compressed=kind != "tar")
                # Random-access mode (not "r|") so pax and long-name headers are read with
                # one bounded read() that _TarStream can refuse.
                with tarfile.open(fileobj=stream, mode="r:") as archive:
                    while (member := archive.next()) is not None:
                        self._read_tar_member(archive, member, raw)

    def _read_tar_member(
        self,
        archive: tarfile.TarFile,
        member: tarfile.TarInfo,
        raw: _CountingFile,
    ) -> None:
        self._count_entry()
        # Members are forgotten once judged: tarfile would otherwise keep every TarInfo.
        archive.members.clear()
        name = member.name
        parts = self._parts(name, is_dir=member.isdir())
        if parts is not None and self._is_git_metadata(parts):
            return
        shown = _show(name)
        if parts is not None:
            self._check_path(parts, shown, symlink=member.issym())
        if member.isdir():
            self._add_dir(parts)
            return
        assert parts is not None
        if member.ischr() or member.isblk() or member.isfifo():
            raise ArchiveError(f"The archive entry {shown} is a device file or FIFO.")
        if member.issym():
            target = member.linkname
            self._check_link_target(target, shown)
            size = len(target.encode("utf-8"))
            self._count_file(shown, size)
            self._add(parts, _Pending(parts, MODE_SYMLINK, size, link_target=target), shown)
        elif member.islnk():
            self._add_hardlink(parts, member.linkname, shown)
        elif member.isreg():
            if len(self.files) + 1 > self.limits.max_files:
                raise ArchiveError(f"The archive has more than {self.limits.max_files} files.")
            content = archive.extractfile(member)
            assert content is not None
            offset, written = self._copy_content(content, shown, raw)
            self._add_bytes(shown, written)
            mode = MODE_EXECUTABLE if member.mode & 0o111 else MODE_FILE
            pending = _Pending(parts, mode, written, self.contents_path, offset)
            self._add(parts, pending, shown)
        else:
            raise ArchiveError(f"The archive entry {shown} has an unsupported type.")

    def _add_hardlink(self, parts: tuple[str, ...], linkname: str, shown: str) -> None:
        if (
            linkname.startswith("/")
            or _DRIVE_LETTER.match(linkname)
            or ".." in linkname.replace("\\", "/").split("/")
        ):
            raise ArchiveError(f"The hard link {shown} points outside the archive.")
        target_parts = self._parts(linkname) if linkname else None
        target = self.files.get(target_parts) if target_parts else None
        if target is None:
            raise ArchiveError(
                f"The hard link {shown} points to a file that is not in the archive."
            )
        if target.link_target is not None:
            self._check_path(parts, shown, symlink=True)
        # Inside the tree a hard link is simply a second copy of its target; the content
        # file is shared, and its size counts again so links cannot multiply the total.
        self._count_file(shown, target.size)
        copy = _Pending(
            parts, target.mode, target.size, target.source, target.offset, target.link_target
        )
        self._add(parts, copy, shown)

    # whole-tree checks

    def _finish(self) -> ExtractedArchive:
        if not self.files:
            raise ArchiveError("The archive contains no files.")
        folders: set[tuple[str, ...]] = set()
        for parts in self.files:
            folders.update(parts[:i] for i in range(1, len(parts)))
        for parts in self.dirs:
            folders.update(parts[:i] for i in range(1, len(parts) + 1))
        for parts in self.files:
            if parts in folders:
                raise ArchiveError(
                    f"The archive entry {_show('/'.join(parts))} is both a file and a folder."
                )
        stripped = self._wrapping_folder()
        files = self.files
        if stripped is not None:
            files = {parts[1:]: pending for parts, pending in files.items()}
        symlinks = {
            "/".join(parts): pending.link_target
            for parts, pending in files.items()
            if pending.link_target is not None
        }
        for link_path, link_target in symlinks.items():
            assert link_target is not None
            _check_symlink_stays_inside(link_path, link_target, symlinks)
        entries = [
            ArchiveEntry(
                path="/".join(parts),
                mode=pending.mode,
                size=pending.size,
                source=pending.source,
                offset=pending.offset,
                link_target=pending.link_target,
            )
            for parts, pending in sorted(files.items())
        ]
        return ExtractedArchive(
            entries=entries,
            workdir=self.workdir,
            total_bytes=self.total_bytes,
            stripped_prefix=stripped,
            dropped_git_dir=self.dropped_git,
        )

    def _wrapping_folder(self) -> str | None:
        """Return the single top-level folder that wraps everything, if there is one."""
        tops = {parts[0] for parts in self.files} | {parts[0] for parts in self.dirs}
        if len(tops) != 1:
            return None
        if any(len(parts) == 1 for parts in self.files):
            return None
        return next(iter(tops))


def _check_symlink_stays_inside(
    link_path: str, target: str, symlinks: dict[str, str | None]
) -> None:
    """Resolve a symlink the way a checkout would, following other symlinks in the tree."""
    shown = _show(link_path)
    location = link_path.split("/")[:-1]
    pending = target.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not location:
                raise ArchiveError(f"The symlink {shown} points outside the archive.")
            location.pop()
            continue
        candidate = "/".join([*location, part])
        next_target = symlinks.get(candidate)
        if next_target is None:
            location.append(part)
            continue
        hops += 1
        if hops > 40:
            raise ArchiveError(f"The symlink {shown} is part of a symlink loop.")
        if next_target.startswith("/"):
            raise ArchiveError(f"The symlink {shown} points outside the archive.")
        pending = next_target.split("/") + pending
