package remote

// HeartbeatFile is the one kind of object escrow keeps outside restic's
// folders: PREFIX/escrow/heartbeats/HOST-ID.json, a small JSON report each
// agent writes every few minutes so that a fleet view can tell a silent host
// from a healthy one. restic ignores the escrow/ folder.
//
// Heartbeats are only ever written (PUT) and read, never removed: the host's
// credentials need no delete right. Each write replaces the object; on a
// versioned bucket it adds a version.
//
// It is not in FileTypes: a repository's full listing (check, copy) walks
// restic's kinds only.
//
// Integration note: other escrow-only objects should become further
// FileTypes under "escrow/" the same way (Valid, ObjectPath and both
// backends' List accept them), rather than a second raw-object API.
const HeartbeatFile FileType = "escrow/heartbeats"
