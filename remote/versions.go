package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is one stored version of an object in a store that keeps them
// (an S3 bucket with versioning). Delete markers are versions too: they
// hide the object from a plain listing without removing its data.
type Version struct {
	// ID is the store's version ID; "null" for a version written while
	// versioning was off.
	ID           string
	Modified     time.Time
	Size         int64
	DeleteMarker bool
	// Latest is true for the version a plain read returns (or, for a
	// delete marker, the one that hides the object).
	Latest bool
}

// ErrNoVersions means the store keeps no old versions of objects: a local
// directory, or a bucket without versioning.
var ErrNoVersions = errors.New("the store keeps no object versions")

// versioned is what a backend offers when it can read old versions; the
// retry layer passes it through.
type versioned interface {
	Versions(ctx context.Context, h Handle) ([]Version, error)
	LoadVersion(ctx context.Context, h Handle, versionID string, offset, length int64) (io.ReadCloser, error)
}

// Versions lists h's versions, newest first, retrying like the other
// operations. It fails with ErrNoVersions when the wrapped backend keeps none.
func (r *retryBackend) Versions(ctx context.Context, h Handle) ([]Version, error) {
	v, ok := r.b.(versioned)
	if !ok {
		return nil, fmt.Errorf("versions of %s at %s: %w", h, r.b.Location(), ErrNoVersions)
	}
	var out []Version
	err := r.do(ctx, "list versions of "+h.String(), func() error {
		var err error
		out, err = v.Versions(ctx, h)
		return err
	})
	return out, err
}

// LoadVersion is Load of one version of h, read into memory inside the
// retry loop as Load is.
func (r *retryBackend) LoadVersion(ctx context.Context, h Handle, versionID string, offset, length int64) (io.ReadCloser, error) {
	v, ok := r.b.(versioned)
	if !ok {
		return nil, fmt.Errorf("load %s version %s at %s: %w", h, versionID, r.b.Location(), ErrNoVersions)
	}
	var data []byte
	err := r.do(ctx, "load "+h.String()+" version "+versionID, func() error {
		rd, err := v.LoadVersion(ctx, h, versionID, offset, length)
		if err != nil {
			return err
		}
		data, err = readInto(rd, length, nil)
		if cerr := rd.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("load %s version %s: %w", h, versionID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &bufferedReader{Reader: bytes.NewReader(data), data: data}, nil
}
