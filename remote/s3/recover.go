package s3

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/remote"
)

// Recovery makes the current view of a repository equal its view at a past
// time, without removing any version: a key whose current version differs
// from its version at the time gets that version copied on top (a server-
// side copy, so no data passes through this machine), and a key that did
// not exist at the time gets a delete marker. What an attacker wrote stays
// as noncurrent versions, for evidence and for a change of mind.
//
// Lock files are left alone: locks from the past would only block
// maintenance, and current ones belong to processes running now.

// RecoverAction is what recovery does to one key.
type RecoverAction string

// The actions of a recovery.
const (
	// RecoverRestore copies the version at the time on top.
	RecoverRestore RecoverAction = "restore"
	// RecoverHide puts a delete marker on a key that did not exist then.
	RecoverHide RecoverAction = "hide"
)

// RecoverStep is one change to one key.
type RecoverStep struct {
	Action RecoverAction
	Type   remote.FileType
	Key    string
	// VersionID is the version restored (RecoverRestore only).
	VersionID string
}

// RecoverPlan is what recovery will do, in the order it does it.
type RecoverPlan struct {
	At    time.Time
	Steps []RecoverStep
	// Unchanged counts the keys per type already as they were.
	Unchanged map[remote.FileType]int
}

// Count returns how many steps of action touch type t.
func (p *RecoverPlan) Count(t remote.FileType, a RecoverAction) int {
	n := 0
	for _, s := range p.Steps {
		if s.Type == t && s.Action == a {
			n++
		}
	}
	return n
}

// recoverTypes are the folders recovery covers.
var recoverTypes = []remote.FileType{remote.ConfigFile, remote.KeyFile, remote.SnapshotFile, remote.IndexFile, remote.PackFile}

// recoveredFrom is the metadata a restored copy carries: the version it
// copies, so a second run knows a multipart object (whose copy gets
// another ETag) is already restored.
const recoveredFrom = "Escrow-Recovered-From"

// keyState is one key's current version and its version at the time.
type keyState struct {
	cur, then       minio.ObjectInfo
	hasCur, hasThen bool
}

// PlanRecover compares every key of the repository's folders now and at
// time at. It needs versioning and a credential that may list versions.
func (b *Backend) PlanRecover(ctx context.Context, at time.Time) (*RecoverPlan, error) {
	if err := b.requireVersioning(ctx, "recover"); err != nil {
		return nil, err
	}
	p := &RecoverPlan{At: at, Unchanged: map[remote.FileType]int{}}
	// Write order, as a backup writes: data before the index that names it,
	// the index before the snapshots. Snapshots that did not exist then are
	// hidden first, so no reader meanwhile sees a snapshot whose data is
	// being changed; other keys are hidden last.
	var restore, hideSnaps, hideRest []RecoverStep
	for _, t := range recoverTypes {
		keys, err := b.keyStates(ctx, t, at)
		if err != nil {
			return nil, err
		}
		for _, key := range keys.order {
			st := keys.m[key]
			curLive := st.hasCur && !st.cur.IsDeleteMarker
			thenLive := st.hasThen && !st.then.IsDeleteMarker
			switch {
			case !thenLive && !curLive:
				p.Unchanged[t]++
			case !thenLive:
				step := RecoverStep{Action: RecoverHide, Type: t, Key: key}
				if t == remote.SnapshotFile {
					hideSnaps = append(hideSnaps, step)
				} else {
					hideRest = append(hideRest, step)
				}
			default:
				same, err := b.sameVersion(ctx, st)
				if err != nil {
					return nil, err
				}
				if same {
					p.Unchanged[t]++
					continue
				}
				restore = append(restore, RecoverStep{Action: RecoverRestore, Type: t, Key: key, VersionID: st.then.VersionID})
			}
		}
	}
	// restore is in recoverTypes order (config, keys, snapshots, index,
	// data); move the snapshots and the index after the data.
	var first, last []RecoverStep
	for _, s := range restore {
		if s.Type == remote.SnapshotFile || s.Type == remote.IndexFile {
			last = append(last, s)
		} else {
			first = append(first, s)
		}
	}
	for _, t := range []remote.FileType{remote.IndexFile, remote.SnapshotFile} {
		for _, s := range last {
			if s.Type == t {
				first = append(first, s)
			}
		}
	}
	p.Steps = append(append(hideSnaps, first...), hideRest...)
	return p, nil
}

type keyStates struct {
	order []string
	m     map[string]*keyState
}

// keyStates lists type t's folder with versions once.
func (b *Backend) keyStates(ctx context.Context, t remote.FileType, at time.Time) (keyStates, error) {
	ks := keyStates{m: map[string]*keyState{}}
	prefix := b.join(string(t)) + "/"
	exact := ""
	if t == remote.ConfigFile {
		prefix = b.join("config")
		exact = prefix
	}
	err := b.listVersions(ctx, prefix, string(t), func(obj minio.ObjectInfo) error {
		if exact != "" && obj.Key != exact {
			return nil
		}
		if exact == "" {
			if _, ok := listedName(t, strings.TrimPrefix(obj.Key, prefix)); !ok {
				return nil
			}
		}
		st := ks.m[obj.Key]
		if st == nil {
			st = &keyState{}
			ks.m[obj.Key] = st
			ks.order = append(ks.order, obj.Key)
		}
		if obj.IsLatest {
			st.cur, st.hasCur = obj, true
		}
		// Versions come newest first: the first not after the time is
		// the one then.
		if !st.hasThen && !obj.LastModified.After(at) {
			st.then, st.hasThen = obj, true
		}
		return nil
	})
	if err != nil {
		return ks, fmt.Errorf("recover: %w", err)
	}
	return ks, nil
}

// sameVersion reports whether the current version already holds the
// content of the version at the time: it is that version, a copy with the
// same single-part ETag, or a copy this recovery made earlier.
func (b *Backend) sameVersion(ctx context.Context, st *keyState) (bool, error) {
	cur, then := st.cur, st.then
	switch {
	case cur.VersionID == then.VersionID:
		return true, nil
	case cur.Size != then.Size:
		return false, nil
	case cur.ETag == then.ETag && !strings.Contains(then.ETag, "-"):
		return true, nil
	case !strings.Contains(then.ETag, "-"):
		return false, nil
	}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, cur.Key, minio.StatObjectOptions{VersionID: cur.VersionID})
	if err != nil {
		return false, b.classify(ctx, "stat", cur.Key, err)
	}
	return info.UserMetadata[recoveredFrom] == then.VersionID, nil
}

// ApplyRecover carries out the plan's steps in order, calling done after
// each. Every step is safe to repeat, and PlanRecover after an interruption
// plans only what is left.
func (b *Backend) ApplyRecover(ctx context.Context, p *RecoverPlan, done func(RecoverStep)) error {
	for _, s := range p.Steps {
		var err error
		switch s.Action {
		case RecoverRestore:
			_, err = b.client.CopyObject(ctx,
				minio.CopyDestOptions{Bucket: b.cfg.Bucket, Object: s.Key, ReplaceMetadata: true,
					UserMetadata: map[string]string{recoveredFrom: s.VersionID}},
				minio.CopySrcOptions{Bucket: b.cfg.Bucket, Object: s.Key, VersionID: s.VersionID})
		case RecoverHide:
			// Without a version ID this only adds a delete marker; the
			// data stays as a noncurrent version.
			err = b.client.RemoveObject(ctx, b.cfg.Bucket, s.Key, minio.RemoveObjectOptions{})
		default:
			err = fmt.Errorf("unknown recovery action %q", s.Action)
		}
		if err != nil {
			return fmt.Errorf("recover: %s %s: %w (run the same recover command again to continue)", s.Action, s.Key, b.classify(ctx, string(s.Action), s.Key, err))
		}
		if done != nil {
			done(s)
		}
	}
	return nil
}
