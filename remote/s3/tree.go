package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/remote"
)

// This file reads a bucket as a tree of folders, below the backend's
// prefix, for views that span many repositories (escrow fleet). It never
// writes.

// ListDir lists one level of the folder dir (slash-separated, relative to
// the prefix; "" for the prefix itself): the names of its sub-folders and
// of the objects directly in it.
func (b *Backend) ListDir(ctx context.Context, dir string) (dirs []string, objects []remote.FileInfo, err error) {
	prefix := b.join(strings.Trim(dir, "/"))
	if prefix != "" {
		prefix += "/"
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range b.client.ListObjectsIter(lctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return nil, nil, b.classify(ctx, "list", "folder "+dir, obj.Err)
		}
		rel := strings.TrimPrefix(obj.Key, prefix)
		switch {
		case rel == "":
		case strings.HasSuffix(rel, "/"):
			dirs = append(dirs, strings.TrimSuffix(rel, "/"))
		default:
			objects = append(objects, remote.FileInfo{Name: rel, Size: obj.Size})
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("list folder %s: %w", dir, err)
	}
	return dirs, objects, nil
}

// GetKey reads the whole object at key (relative to the prefix), at most
// limit bytes: a larger object is an error, not a truncated read.
func (b *Backend) GetKey(ctx context.Context, key string, limit int64) ([]byte, error) {
	body, _, _, err := b.core.GetObject(ctx, b.cfg.Bucket, b.join(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, b.classify(ctx, "load", key, err)
	}
	defer body.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, b.classify(ctx, "load", key, err)
	}
	if n > limit {
		return nil, fmt.Errorf("load %s: %w: larger than %d bytes", key, remote.ErrPermanent, limit)
	}
	return buf.Bytes(), nil
}

// Sub returns a Backend for the folder dir below this one's prefix,
// sharing its connection. Closing it does not close this one.
func (b *Backend) Sub(dir string) *Backend {
	cfg := b.cfg
	cfg.Prefix = b.join(strings.Trim(dir, "/"))
	return &Backend{cfg: cfg, client: b.client, core: b.core}
}
