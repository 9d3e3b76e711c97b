package remote

import "github.com/escrow-backup/escrow/internal/failpoint"

// MidUploadStep is the failpoint a backend passes with part of an object of
// type t sent or written ("" for types no crash test stops mid-way).
func MidUploadStep(t FileType) failpoint.Step {
	switch t {
	case PackFile:
		return failpoint.PackUploadMid
	case SnapshotFile:
		return failpoint.SnapshotUploadMid
	}
	return ""
}
