from __future__ import annotations

import gzip
import io
import lzma
import os
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from qweb.lib.archives import (
    MODE_EXECUTABLE,
    MODE_FILE,
    MODE_SYMLINK,
    ArchiveError,
    ArchiveLimits,
    read_archive,
)

MB = 1024 * 1024
TAR_MODES = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.xz": "w:xz"}


# --- building archives ---------------------------------------------------------------------


def zip_member(name, data=b"", *, mode=0o100644):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info, data


def build_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def tar_member(name, data=b"", *, kind=tarfile.REGTYPE, mode=0o644, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def build_tar(path, members, mode=None):
    mode = mode or TAR_MODES[next(k for k in TAR_MODES if str(path).endswith(k))]
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def build(path, members):
    """Build a zip or tar from neutral (name, data, kind, extra) tuples."""
    if str(path).endswith(".zip"):
        zipped = []
        for name, data, kind, extra in members:
            if kind == "file":
                zipped.append(zip_member(name, data, mode=0o100000 | (extra or 0o644)))
            elif kind == "dir":
                zipped.append(zip_member(name.rstrip("/") + "/", b"", mode=0o040755))
            elif kind == "symlink":
                zipped.append(zip_member(name, extra.encode(), mode=0o120777))
        return build_zip(path, zipped)
    tarred = []
    for name, data, kind, extra in members:
        if kind == "file":
            tarred.append(tar_member(name, data, mode=extra or 0o644))
        elif kind == "dir":
            tarred.append(tar_member(name, kind=tarfile.DIRTYPE, mode=0o755))
        elif kind == "symlink":
            tarred.append(tar_member(name, kind=tarfile.SYMTYPE, linkname=extra))
    return build_tar(path, tarred)


def file(name, data=b"x", mode=None):
    return (name, data, "file", mode)


def folder(name):
    return (name, b"", "dir", None)


def symlink(name, target):
    return (name, b"", "symlink", target)


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def uploads(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture
def temp_root(tmp_path):
    folder = tmp_path / "temp"
    folder.mkdir()
    return folder


@pytest.fixture
def read(temp_root):
    def read(path, filename=None, limits=None):
        return read_archive(
            path, filename=filename or Path(path).name, limits=limits, temp_dir=temp_root
        )

    return read


@pytest.fixture
def refused(temp_root):
    """Assert an archive is refused, with nothing left behind; return the message."""

    def refused(path, filename=None, limits=None):
        with pytest.raises(ArchiveError) as caught:
            read_archive(
                path, filename=filename or Path(path).name, limits=limits, temp_dir=temp_root
            )
        assert list(temp_root.iterdir()) == []
        message = caught.value.message
        assert message == str(caught.value)
        assert "\n" not in message
        return message

    return refused


def contents(extracted):
    return {entry.path: (entry.mode, entry.read_bytes()) for entry in extracted.entries}


ALL_KINDS = ["x.zip", "x.tar", "x.tar.gz", "x.tgz", "x.tar.xz"]
SOME_KINDS = ["x.zip", "x.tar.gz"]


# --- reading good archives ---------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_KINDS)
def test_it_reads_files_executables_and_symlinks_from_every_format(uploads, read, name):
    path = build(
        uploads / name,
        [
            file("README.md", b"# hello\n"),
            folder("bin"),
            file("bin/run", b"#!/bin/sh\n", 0o755),
            symlink("docs", "README.md"),
        ],
    )

    with read(path) as extracted:
        assert contents(extracted) == {
            "README.md": (MODE_FILE, b"# hello\n"),
            "bin/run": (MODE_EXECUTABLE, b"#!/bin/sh\n"),
            "docs": (MODE_SYMLINK, b"README.md"),
        }
        assert extracted.total_bytes == len(b"# hello\n#!/bin/sh\n") + len("README.md")


def test_it_keeps_contents_in_its_temp_folder_and_removes_it_on_close(uploads, read, temp_root):
    path = build(uploads / "x.zip", [file("a.txt", b"a" * 1000)])

    extracted = read(path)
    entry = extracted.entries[0]
    assert entry.source is not None
    assert entry.source.parent == extracted.workdir
    assert extracted.workdir.parent == temp_root
    extracted.close()

    assert list(temp_root.iterdir()) == []


@pytest.mark.parametrize("name", SOME_KINDS)
def test_it_strips_a_single_wrapping_folder(uploads, read, name):
    path = build(
        uploads / name,
        [
            folder("project-1.2"),
            file("project-1.2/setup.py"),
            file("project-1.2/src/app.py"),
        ],
    )

    with read(path) as extracted:
        assert [e.path for e in extracted.entries] == ["setup.py", "src/app.py"]
        assert extracted.stripped_prefix == "project-1.2"


def test_it_does_not_strip_when_there_are_several_top_level_entries(uploads, read):
    path = build(uploads / "x.tgz", [file("src/app.py"), file("README")])

    with read(path) as extracted:
        assert [e.path for e in extracted.entries] == ["README", "src/app.py"]
        assert extracted.stripped_prefix is None


def test_it_does_not_strip_a_lone_top_level_file(uploads, read):
    path = build(uploads / "x.zip", [file("README")])

    with read(path) as extracted:
        assert [e.path for e in extracted.entries] == ["README"]


def test_it_accepts_tar_names_with_a_leading_dot_slash(uploads, read):
    path = build(uploads / "x.tgz", [folder("./"), file("./a.py"), file("./lib/b.py")])

    with read(path) as extracted:
        assert [e.path for e in extracted.entries] == ["a.py", "lib/b.py"]


@pytest.mark.parametrize("name", SOME_KINDS)
def test_it_drops_git_folders_and_files_at_any_depth(uploads, read, name):
    path = build(
        uploads / name,
        [
            file("app.py"),
            folder(".git"),
            file(".git/config", b"[core]\n\thooksPath = /tmp/evil\n"),
            file(".git/hooks/post-checkout", b"#!/bin/sh\nrm -rf /\n", 0o755),
            file("vendor/lib/.git", b"gitdir: ../../.git/modules/lib\n"),
            file("vendor/lib/lib.py"),
            file("other/.GIT/HEAD"),
            file(".gitignore", b"*.pyc\n"),
        ],
    )

    with read(path) as extracted:
        assert [e.path for e in extracted.entries] == [
            ".gitignore",
            "app.py",
            "vendor/lib/lib.py",
        ]
        assert extracted.dropped_git_dir


def test_it_stores_nested_archives_as_plain_files(uploads, read):
    inner = build(uploads / "inner.zip", [file("../../escape.txt", b"never unpacked")])
    inner_bytes = inner.read_bytes()
    path = build(uploads / "x.tar.gz", [file("vendor/inner.zip", inner_bytes), file("README")])

    with read(path) as extracted:
        assert contents(extracted)["vendor/inner.zip"] == (MODE_FILE, inner_bytes)
        assert len(extracted.entries) == 2


def test_it_accepts_an_upload_given_as_a_file_object(uploads, read):
    path = build(uploads / "x.zip", [file("a.txt", b"hello")])

    with read(io.BytesIO(path.read_bytes()), filename="upload.zip") as extracted:
        assert contents(extracted) == {"a.txt": (MODE_FILE, b"hello")}


def test_it_stores_hardlinks_inside_the_tree_as_copies(uploads, read):
    path = build_tar(
        uploads / "x.tgz",
        [
            tar_member("a.txt", b"shared"),
            tar_member("b.txt", kind=tarfile.LNKTYPE, linkname="a.txt"),
        ],
    )

    with read(path) as extracted:
        assert contents(extracted) == {
            "a.txt": (MODE_FILE, b"shared"),
            "b.txt": (MODE_FILE, b"shared"),
        }


def test_it_accepts_symlinks_that_stay_inside_the_tree(uploads, read):
    path = build(
        uploads / "x.zip",
        [
            file("pkg/data/a.txt"),
            symlink("pkg/current", "data/a.txt"),
            symlink("pkg/up", "../top.txt"),
            file("top.txt"),
            symlink("pkg/dangling", "missing/but/inside"),
        ],
    )

    with read(path) as extracted:
        assert len(extracted.entries) == 5


# --- type checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "claimed", "found"),
    [
        ("x.zip", "x.tar.gz", "a zip file"),
        ("x.tar.gz", "x.zip", "a gzip file"),
        ("x.tar.xz", "x.tgz", "an xz file"),
        ("x.tar", "x.tar.xz", "a tar file"),
        ("x.tar.gz", "x.tar", "a gzip file"),
    ],
)
def test_it_refuses_an_archive_that_is_not_what_its_name_says(
    uploads, refused, built, claimed, found
):
    path = build(uploads / built, [file("a.txt")])

    message = refused(path, filename=claimed)

    assert found in message


def test_it_refuses_a_file_that_is_no_archive_at_all(uploads, refused):
    path = uploads / "x.zip"
    path.write_bytes(b"#!/bin/sh\necho hi\n")

    assert "not an archive" in refused(path)


def test_it_refuses_unsupported_file_types(uploads, refused):
    path = uploads / "x.rar"
    path.write_bytes(b"Rar!\x1a\x07\x00")

    assert "Unsupported file type" in refused(path)


def test_it_refuses_a_gzip_file_that_holds_no_tar(uploads, refused):
    path = uploads / "x.tar.gz"
    path.write_bytes(gzip.compress(b"just some text" * 100))

    assert "does not contain a tar archive" in refused(path)


def test_it_refuses_a_damaged_archive(uploads, refused):
    good = build(uploads / "good.tgz", [file(f"f{i}.txt", os.urandom(2000)) for i in range(20)])
    path = uploads / "x.tgz"
    path.write_bytes(good.read_bytes()[:3000])

    assert "could not be read" in refused(path)


# --- bad names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_KINDS)
def test_it_refuses_paths_with_dotdot(uploads, refused, name):
    path = build(uploads / name, [file("ok.txt"), file("src/../../etc/passwd")])

    assert "contains '..'" in refused(path)


@pytest.mark.parametrize("name", SOME_KINDS)
def test_it_refuses_absolute_paths(uploads, refused, name):
    path = build(uploads / name, [file("/etc/cron.d/evil")])

    assert "absolute path" in refused(path)


@pytest.mark.parametrize("bad", ["C:/Windows/evil.dll", "c:evil.txt"])
def test_it_refuses_windows_drive_letters(uploads, refused, bad):
    path = build(uploads / "x.zip", [file(bad)])

    assert "Windows drive letter" in refused(path)


@pytest.mark.parametrize("bad", ["..\\..\\evil.txt", "dir\\file.txt"])
def test_it_refuses_backslashes_in_paths(uploads, refused, bad):
    path = build(uploads / "x.tgz", [file(bad)])

    assert "backslash" in refused(path)


def test_it_refuses_a_nul_character_in_a_zip_name(uploads, refused):
    # zipfile cuts names at NUL when writing, so the NUL is patched into the bytes.
    path = build(uploads / "x.zip", [file("safe.txtX../../evil")])
    path.write_bytes(path.read_bytes().replace(b"safe.txtX", b"safe.txt\x00"))

    assert "control character U+0000" in refused(path)


def test_it_refuses_a_nul_character_in_a_tar_name(uploads, refused):
    info, data = tar_member("placeholder", b"x")
    info.pax_headers = {"path": "safe.txt\x00../../evil"}
    path = build_tar(uploads / "x.tar.gz", [(info, data)])

    assert "control character U+0000" in refused(path)


@pytest.mark.parametrize("bad", ["evil\nname.txt", "a\x1b[31m.txt", "tab\there", "del\x7f"])
def test_it_refuses_control_characters_in_names(uploads, refused, bad):
    path = build(uploads / "x.tgz", [file(bad)])

    assert "control character" in refused(path)


# Names that open the .git folder on Windows (NTFS) or macOS (HFS+); git fsck calls them
# "hasDotgit" and git will not check them out.
GIT_DIR_ALIASES = [
    ".git.",
    ".git /",
    "GIT~1",
    "git~1",
    ".git::$INDEX_ALLOCATION",
    ".g\u200cit",
    "\ufeff.GIT",
]


@pytest.mark.parametrize("alias", GIT_DIR_ALIASES)
@pytest.mark.parametrize("name", SOME_KINDS)
def test_it_refuses_names_that_are_git_on_windows_or_macos(uploads, refused, name, alias):
    folder_name = alias.rstrip("/")
    path = build(
        uploads / name,
        [file("app.py"), file(f"{folder_name}/config", b"[core]\n\tfsmonitor = touch /tmp/x\n")],
    )

    message = refused(path)

    assert message.startswith("The archive entry ")
    assert "is inside .git (" in message


@pytest.mark.parametrize("alias", ["git~1", ".git.", ".g\u200dit"])
def test_it_refuses_git_aliases_below_the_top_and_under_a_wrapping_folder(uploads, refused, alias):
    path = build(uploads / "x.tgz", [file("proj/app.py"), file(f"proj/sub/{alias}/hooks/x")])

    assert "is inside .git (" in refused(path)


@pytest.mark.parametrize("name", [".gitmodules", "sub/GITMOD~1", ".gitmodules."])
def test_it_refuses_a_symlink_git_would_read_as_gitmodules(uploads, refused, name):
    path = build(uploads / "x.tgz", [file("app.py"), symlink(name, "app.py")])

    assert "would read as .gitmodules" in refused(path)


def test_a_regular_gitmodules_file_and_lookalike_names_are_kept(uploads, read):
    path = build(
        uploads / "x.zip",
        [file(".gitmodules"), file(".github/ci.yml"), file(".git.x/a"), file("git~2/a")],
    )

    with read(path) as extracted:
        assert [e.path for e in extracted.entries] == [
            ".git.x/a",
            ".github/ci.yml",
            ".gitmodules",
            "git~2/a",
        ]


def test_it_refuses_names_that_are_not_utf8(uploads, refused):
    path = build_tar(uploads / "x.tar", [tar_member("caf\udce9.txt", b"x")], mode="w")

    assert "not UTF-8" in refused(path)


@pytest.mark.parametrize("bad", ["", ".", "./."])
def test_it_refuses_empty_names(uploads, refused, bad):
    path = build_zip(uploads / "x.zip", [zip_member("ok.txt"), zip_member(bad)])

    assert "empty name" in refused(path)


def test_it_refuses_names_that_are_too_long(uploads, refused):
    path = build(uploads / "x.tgz", [file("a" * 300)])

    assert "longer than 255 bytes" in refused(path)


# --- links and special files ---------------------------------------------------------------


@pytest.mark.parametrize("name", SOME_KINDS)
def test_it_refuses_symlinks_to_absolute_paths(uploads, refused, name):
    path = build(uploads / name, [file("a.txt"), symlink("passwd", "/etc/passwd")])

    assert "symlink 'passwd' points outside the archive" in refused(path)


@pytest.mark.parametrize("name", SOME_KINDS)
def test_it_refuses_symlinks_that_escape_with_dotdot(uploads, refused, name):
    path = build(uploads / name, [file("a.txt"), symlink("sub/link", "../../secret")])

    assert "points outside the archive" in refused(path)


def test_it_refuses_symlinks_that_escape_once_the_wrapping_folder_is_stripped(uploads, refused):
    path = build(uploads / "x.tgz", [file("proj/a.txt"), symlink("proj/link", "../proj/a.txt")])

    assert "points outside the archive" in refused(path)


def test_it_refuses_symlinks_that_escape_through_another_symlink(uploads, refused):
    # "deep/up/.." looks like "deep" on paper, but deep/up is itself a link to "..".
    path = build(
        uploads / "x.zip",
        [
            file("a.txt"),
            symlink("deep/up", ".."),
            symlink("escape", "deep/up/.."),
        ],
    )

    assert "symlink 'escape' points outside the archive" in refused(path)


def test_it_refuses_symlink_loops(uploads, refused):
    path = build(uploads / "x.zip", [file("a.txt"), symlink("one", "two/x"), symlink("two", "one")])

    assert "symlink loop" in refused(path)


@pytest.mark.parametrize("target", ["../outside.txt", "/etc/passwd"])
def test_it_refuses_hardlinks_pointing_outside_the_tree(uploads, refused, target):
    path = build_tar(
        uploads / "x.tgz",
        [
            tar_member("a.txt", b"x"),
            tar_member("link", kind=tarfile.LNKTYPE, linkname=target),
        ],
    )

    assert "hard link 'link' points outside the archive" in refused(path)


def test_it_refuses_hardlinks_to_files_not_in_the_archive(uploads, refused):
    path = build_tar(
        uploads / "x.tgz",
        [
            tar_member("a.txt", b"x"),
            tar_member("link", kind=tarfile.LNKTYPE, linkname="missing.txt"),
        ],
    )

    assert "not in the archive" in refused(path)


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_it_refuses_device_files_and_fifos_in_tars(uploads, refused, kind):
    path = build_tar(uploads / "x.tar", [tar_member("a.txt", b"x"), tar_member("dev", kind=kind)])

    assert "device file or FIFO" in refused(path)


@pytest.mark.parametrize("file_type", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
def test_it_refuses_device_files_and_fifos_in_zips(uploads, refused, file_type):
    path = build_zip(uploads / "x.zip", [zip_member("dev", mode=file_type | 0o644)])

    assert "device file" in refused(path)


def test_it_refuses_a_symlink_used_as_a_folder(uploads, refused):
    # Extracted naively, "a/passwd" would be written through the link into /etc.
    path = build(uploads / "x.tgz", [symlink("a", "b"), file("a/passwd")])

    assert "both a file and a folder" in refused(path)


# --- tree shape ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SOME_KINDS)
def test_it_refuses_duplicate_paths(uploads, refused, name):
    if name.endswith(".zip"):
        with pytest.warns(UserWarning, match="Duplicate name"):
            path = build(uploads / name, [file("a.txt", b"one"), file("a.txt", b"two")])
    else:
        path = build(uploads / name, [file("a.txt", b"one"), file("./a.txt", b"two")])

    message = refused(path)

    assert "a.txt" in message
    assert "more than once" in message


@pytest.mark.parametrize("name", SOME_KINDS)
def test_it_refuses_a_path_that_is_both_a_file_and_a_folder(uploads, refused, name):
    path = build(uploads / name, [file("src"), file("src/app.py")])

    assert "'src' is both a file and a folder" in refused(path)


def test_it_refuses_a_file_that_is_also_an_explicit_folder(uploads, refused):
    path = build(uploads / "x.tgz", [file("docs"), folder("docs/empty")])

    assert "both a file and a folder" in refused(path)


def test_it_refuses_an_archive_without_files(uploads, refused):
    path = build(uploads / "x.tgz", [folder("empty"), file(".git/config")])

    assert "no files" in refused(path)


def test_it_refuses_an_empty_zip(uploads, refused):
    path = build_zip(uploads / "x.zip", [])

    assert "empty" in refused(path)


# --- size limits ---------------------------------------------------------------------------


def test_it_refuses_an_archive_over_the_size_limit(uploads, refused):
    path = build(uploads / "x.zip", [file("a.bin", os.urandom(20_000))])

    message = refused(path, limits=ArchiveLimits(max_archive_bytes=10_000))

    assert "archive is larger than" in message


def test_it_refuses_a_file_object_over_the_size_limit(uploads, refused):
    path = build(uploads / "x.zip", [file("a.bin", os.urandom(200_000))])

    message = refused(
        io.BytesIO(path.read_bytes()), "x.zip", limits=ArchiveLimits(max_archive_bytes=100_000)
    )

    assert "archive is larger than" in message


@pytest.mark.parametrize("name", ALL_KINDS)
def test_it_refuses_a_single_file_over_the_size_limit(uploads, refused, name):
    path = build(uploads / name, [file("small.txt"), file("big.bin", os.urandom(300_000))])

    message = refused(path, limits=ArchiveLimits(max_file_bytes=200_000))

    assert "'big.bin' is larger than" in message


@pytest.mark.parametrize("name", ALL_KINDS)
def test_it_refuses_archives_that_unpack_past_the_total_limit(uploads, refused, name):
    members = [file(f"part{i}.bin", os.urandom(100_000)) for i in range(5)]
    path = build(uploads / name, members)

    message = refused(path, limits=ArchiveLimits(max_total_bytes=300_000))

    assert "unpacks to more than" in message


def test_it_counts_the_bytes_it_unpacks_not_the_sizes_a_gzip_trailer_claims(uploads, refused):
    path = build(uploads / "x.tgz", [file("big.bin", os.urandom(400_000))])
    data = bytearray(path.read_bytes())
    data[-4:] = struct.pack("<I", 10)  # ISIZE: "this unpacks to 10 bytes"
    path.write_bytes(bytes(data))

    message = refused(path, limits=ArchiveLimits(max_total_bytes=300_000))

    assert "unpacks to more than" in message


def test_it_does_not_trust_the_sizes_a_zip_header_declares(uploads, refused):
    payload = os.urandom(50_000)
    path = build(uploads / "x.zip", [file("a.bin", payload)])
    # Declare 10 bytes in both headers: zipfile stops there and the CRC no longer matches.
    data = path.read_bytes()
    declared = struct.pack("<I", len(payload))
    path.write_bytes(data.replace(declared, struct.pack("<I", 10)))

    assert "could not be read" in refused(path)


@pytest.mark.parametrize("name", ALL_KINDS)
def test_it_refuses_too_many_files(uploads, refused, name):
    path = build(uploads / name, [file(f"f{i}.txt") for i in range(11)])

    assert "more than 10 files" in refused(path, limits=ArchiveLimits(max_files=10))


@pytest.mark.parametrize("name", SOME_KINDS)
def test_it_refuses_too_many_entries(uploads, refused, name):
    path = build(uploads / name, [folder(f"d{i}") for i in range(30)] + [file("a.txt")])

    assert "more than 20 entries" in refused(path, limits=ArchiveLimits(max_entries=20))


@pytest.mark.parametrize("name", ALL_KINDS[:1] + ALL_KINDS[2:])
def test_it_refuses_zip_bombs_by_their_compression_ratio(uploads, refused, name):
    path = build(uploads / name, [file("zeros.bin", bytes(4 * MB))])
    limits = ArchiveLimits(max_ratio=50, ratio_floor_bytes=256 * 1024)

    assert "compression ratio" in refused(path, limits=limits)


def test_it_refuses_a_bomb_hidden_in_a_dropped_git_folder(uploads, refused):
    path = build(uploads / "x.tar.xz", [file("a.txt"), file(".git/objects/pack/x", bytes(8 * MB))])
    limits = ArchiveLimits(max_ratio=50, ratio_floor_bytes=256 * 1024)

    assert "compression ratio" in refused(path, limits=limits)


def test_it_refuses_oversized_tar_headers(uploads, refused):
    info, data = tar_member("a.txt", b"x")
    info.pax_headers = {"comment": "x" * (2 * MB)}
    path = build_tar(uploads / "x.tar.gz", [(info, data)])

    assert "oversized header" in refused(path)


def test_its_default_limits_are_safe(uploads):
    limits = ArchiveLimits()

    assert limits.max_archive_bytes == 200 * MB
    assert limits.max_total_bytes == 1024 * MB
    assert limits.max_files == 50_000
    assert limits.max_file_bytes == 50 * MB
    assert limits.max_ratio == 200


def test_it_refuses_a_password_protected_zip_entry(uploads, refused):
    path = build(uploads / "x.zip", [file("secret.txt", b"data")])
    data = bytearray(path.read_bytes())
    # Set the "encrypted" bit in the local header and in the central directory record.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        data[at] |= 0x01
    path.write_bytes(bytes(data))

    assert "password-protected" in refused(path)


def test_it_leaves_nothing_behind_when_xz_data_is_corrupt(uploads, refused):
    path = uploads / "x.tar.xz"
    path.write_bytes(lzma.compress(b"\x00" * 600)[:40])

    refused(path)
