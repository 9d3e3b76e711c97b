// Command dbchunks measures what escrow's stream backup stores for two
// consecutive dumps with several chunk shapes, to choose the one database
// dumps use (bench/db.sh runs it on the dumps it saved).
//
//	dbchunks -dir DIR [-shapes 128,192/16/1024,1024] DUMP1 DUMP2
//
// A shape is AVG, restic's shape scaled to an average of AVG KiB (chunks of
// AVG/2 to 8*AVG KiB), or MIN/BITS/MAX: chunks of MIN to MAX KiB, cut where
// BITS bits of the fingerprint are zero past MIN (see chunk.Shape). For
// each shape it creates a local repository below DIR, backs up DUMP1 and
// then DUMP2 with backup.Stream, as `escrow db dump` does, and prints what
// the second dump added to the repository folder: pack bytes, index bytes
// and in all (with the snapshot and tree), and the blobs each dump added.
// The repositories are removed afterwards.
//
//	dbchunks -dir DIR [-shapes ...] -insert K:MAX DUMP1
//
// compares the shapes on an edit that dumps rarely see but chunk shapes
// differ on: DUMP1 against a copy with K pieces of itself, 1 to MAX bytes
// each, inserted at random places (the same ones every run).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

const password = "dbchunks"

func main() {
	dir := flag.String("dir", "", "folder for the repositories (required; must not exist)")
	shapes := flag.String("shapes", "128,192/16/1024,1024", "chunk shapes, comma separated: AVG or MIN/BITS/MAX (KiB)")
	insert := flag.String("insert", "", "K:MAX: compare DUMP1 with itself after K insertions of up to MAX bytes")
	flag.Parse()
	dumps := 2 // DUMP1 DUMP2, or DUMP1 alone with -insert
	if *insert != "" {
		dumps = 1
	}
	if *dir == "" || flag.NArg() != dumps {
		fmt.Fprintln(os.Stderr, "usage: dbchunks -dir DIR [-shapes 128,192/16/1024,1024] DUMP1 DUMP2")
		fmt.Fprintln(os.Stderr, "       dbchunks -dir DIR [-shapes ...] -insert K:MAX DUMP1")
		os.Exit(2)
	}
	dump2 := flag.Arg(1)
	// cleanup removes what dbchunks wrote: the copy with insertions, never
	// a dump it was given. os.Exit skips deferred calls, so it is called
	// on every way out.
	cleanup := func() {}
	if *insert != "" {
		// Beside DIR, which must not exist yet.
		dump2 = filepath.Clean(*dir) + ".inserted.sql"
		cleanup = func() { os.Remove(dump2) }
		if err := writeInserted(flag.Arg(0), dump2, *insert); err != nil {
			cleanup()
			fmt.Fprintln(os.Stderr, "dbchunks:", err)
			os.Exit(1)
		}
	}
	err := run(context.Background(), *dir, *shapes, flag.Arg(0), dump2)
	cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbchunks:", err)
		os.Exit(1)
	}
}

// writeInserted writes to out the dump in, with k pieces of itself of 1 to
// max bytes inserted at random places.
func writeInserted(in, out, spec string) error {
	var k, most int
	if _, err := fmt.Sscanf(spec, "%d:%d", &k, &most); err != nil || k < 1 || most < 1 {
		return fmt.Errorf("-insert %q: want K:MAX, two numbers from 1", spec)
	}
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	if len(data) <= most {
		return fmt.Errorf("-insert %q: %s has only %d bytes", spec, in, len(data))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	at := make([]int, k)
	for i := range at {
		at[i] = rnd.IntN(len(data))
	}
	slices.Sort(at)
	var buf []byte
	prev, added := 0, 0
	for _, p := range at {
		n := 1 + rnd.IntN(most)
		from := rnd.IntN(len(data) - n)
		buf = append(append(buf, data[prev:p]...), data[from:from+n]...)
		prev, added = p, added+n
	}
	buf = append(buf, data[prev:]...)
	fmt.Printf("DUMP2: %d insertions, %.2f MB inserted\n", k, mb(uint64(added)))
	return os.WriteFile(out, buf, 0o600)
}

// parseShape reads AVG or MIN/BITS/MAX (sizes in KiB).
func parseShape(s string) (chunk.Shape, error) {
	f := strings.Split(strings.TrimSpace(s), "/")
	n := make([]int, len(f))
	for i := range f {
		v, err := strconv.Atoi(f[i])
		if err != nil {
			return chunk.Shape{}, fmt.Errorf("shape %q: %w", s, err)
		}
		n[i] = v
	}
	var sh chunk.Shape
	switch len(n) {
	case 1:
		sh = chunk.Average(n[0] << 10)
	case 3:
		sh = chunk.Shape{Min: uint(n[0]) << 10, Bits: n[1], Max: uint(n[2]) << 10}
	default:
		return chunk.Shape{}, fmt.Errorf("shape %q: want AVG or MIN/BITS/MAX", s)
	}
	return sh, sh.Validate()
}

func run(ctx context.Context, dir, shapes, dump1, dump2 string) error {
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s exists: give a new folder", dir)
	}
	fmt.Printf("%-12s %8s %9s %8s | %9s %9s %9s %8s %7s\n",
		"shape", "blobs1", "first_MB", "stream1_s", "packs2_MB", "index2_MB", "total2_MB", "blobs2", "vs_1MiB")
	var rows []row
	for i, a := range strings.Split(shapes, ",") {
		sh, err := parseShape(a)
		if err != nil {
			return err
		}
		rd := filepath.Join(dir, fmt.Sprintf("shape-%d", i))
		r, err := measure(ctx, rd, sh, dump1, dump2)
		if err != nil {
			return fmt.Errorf("shape %s: %w", a, err)
		}
		r.name = strings.TrimSpace(a)
		if err := os.RemoveAll(rd); err != nil {
			return err
		}
		rows = append(rows, r)
	}
	var ref uint64 // restic's shape's total, if measured
	for _, r := range rows {
		if r.shape == chunk.Average(chunk.DefaultAverage) {
			ref = r.second.total
		}
	}
	for _, r := range rows {
		vs := "-"
		if ref > 0 {
			vs = fmt.Sprintf("%.2f", float64(r.second.total)/float64(ref))
		}
		fmt.Printf("%-12s %8d %9.2f %8.1f | %9.2f %9.2f %9.2f %8d %7s\n", r.name, r.blobs1, mb(r.first.total),
			r.stream1.Seconds(), mb(r.second.packs), mb(r.second.index), mb(r.second.total), r.blobs2, vs)
	}
	return nil
}

type row struct {
	name           string
	shape          chunk.Shape
	blobs1, blobs2 int
	first, second  sizes // added by each dump
	stream1        time.Duration
}

func mb(n uint64) float64 { return float64(n) / 1e6 }

func measure(ctx context.Context, dir string, shape chunk.Shape, dump1, dump2 string) (row, error) {
	res := row{shape: shape}
	be, err := local.Create(ctx, dir)
	if err != nil {
		return res, err
	}
	// A cheap key: opening it is not what is measured.
	kdf := repo.KDFParams{N: 1024, R: 8, P: 1}
	r, err := repo.Init(ctx, be, password, repo.Options{KDF: kdf})
	if err != nil {
		return res, err
	}
	r.Close()
	before, err := dirSizes(dir)
	if err != nil {
		return res, err
	}
	for i, dump := range []string{dump1, dump2} {
		start := time.Now()
		blobs, err := streamFile(ctx, dir, kdf, shape, dump)
		if err != nil {
			return res, err
		}
		after, err := dirSizes(dir)
		if err != nil {
			return res, err
		}
		added := after.minus(before)
		if i == 0 {
			res.first, res.blobs1, res.stream1 = added, blobs, time.Since(start)
		} else {
			res.second, res.blobs2 = added, blobs
		}
		before = after
	}
	return res, nil
}

// streamFile backs up one dump as escrow db dump does: open, load the
// index, stream, close. It returns the data blobs added.
func streamFile(ctx context.Context, dir string, kdf repo.KDFParams, shape chunk.Shape, name string) (int, error) {
	be, err := local.Open(dir)
	if err != nil {
		return 0, err
	}
	r, err := repo.Open(ctx, be, password, repo.Options{KDF: kdf})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		return 0, err
	}
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	res, err := backup.Stream(ctx, r, f, "databases/dump.sql", backup.Options{Chunks: shape, Compression: repo.CompressionStream})
	if err != nil {
		return 0, err
	}
	return res.Summary.DataBlobs, nil
}

// sizes are the bytes of a repository's files: packs (data/), index files
// and in all.
type sizes struct{ packs, index, total uint64 }

func (s sizes) minus(o sizes) sizes {
	return sizes{s.packs - o.packs, s.index - o.index, s.total - o.total}
}

func dirSizes(dir string) (sizes, error) {
	var s sizes
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n := uint64(fi.Size())
		s.total += n
		rel, _ := filepath.Rel(dir, p)
		switch strings.SplitN(filepath.ToSlash(rel), "/", 2)[0] {
		case "data":
			s.packs += n
		case "index":
			s.index += n
		}
		return nil
	})
	return s, err
}
