"""Which filesystem a SQLite file is on, read from the Linux mount table (unknown elsewhere)."""

from __future__ import annotations

import os

MOUNTINFO = "/proc/self/mountinfo"

# Filesystems reached over a network: SQLite's locks are unreliable on them, and WAL mode's
# shared memory only works between processes of one machine (https://sqlite.org/wal.html).
NETWORK_FILESYSTEMS = frozenset(
    {
        "afs",
        "ceph",
        "cifs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "glusterfs",
        "lustre",
        "nfs",
        "nfs4",
        "smb3",
        "smbfs",
    }
)


def network_filesystem(path: str) -> str | None:
    """The type of the network filesystem holding ``path``, or ``None`` (local, or not known)."""
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="replace") as mounts:
            lines = mounts.readlines()
        device = os.stat(os.path.dirname(os.path.abspath(path))).st_dev
    except OSError:  # not Linux, or no /proc
        return None
    wanted = f"{os.major(device)}:{os.minor(device)}"
    for line in lines:
        # ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS [TAGS...] - TYPE SOURCE SUPER_OPTIONS
        mount, _, filesystem = line.partition(" - ")
        fields = mount.split()
        if len(fields) > 2 and fields[2] == wanted and filesystem.strip():
            kind = filesystem.split()[0]
            return kind if kind in NETWORK_FILESYSTEMS else None
    return None
