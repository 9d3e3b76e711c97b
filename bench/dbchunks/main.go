// Command dbchunks measures what escrow's stream backup stores for two
// consecutive dumps at several average chunk sizes, to choose the one
// database dumps use (bench/db.sh runs it on the dumps it saved).
//
//	dbchunks -dir DIR [-avg 16,64,128,1024] DUMP1 DUMP2
//
// For each average (in KiB) it creates a local repository below DIR, backs
// up DUMP1 and then DUMP2 with backup.Stream, as `escrow db dump` does, and
// prints what the second dump added to the repository folder: pack bytes,
// index bytes and in all (with the snapshot and tree), and the blobs each
// dump added. The repositories are removed afterwards.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

const password = "dbchunks"

func main() {
	dir := flag.String("dir", "", "folder for the repositories (required; must not exist)")
	avgs := flag.String("avg", "16,64,128,1024", "average chunk sizes in KiB, comma separated")
	flag.Parse()
	if *dir == "" || flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: dbchunks -dir DIR [-avg 16,64,128,1024] DUMP1 DUMP2")
		os.Exit(2)
	}
	if err := run(context.Background(), *dir, *avgs, flag.Arg(0), flag.Arg(1)); err != nil {
		fmt.Fprintln(os.Stderr, "dbchunks:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, avgs, dump1, dump2 string) error {
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s exists: give a new folder", dir)
	}
	fmt.Printf("%7s %8s %9s %8s | %9s %9s %9s %8s %7s\n",
		"avg_KiB", "blobs1", "first_MB", "stream1_s", "packs2_MB", "index2_MB", "total2_MB", "blobs2", "vs_1MiB")
	var rows []row
	for _, a := range strings.Split(avgs, ",") {
		kib, err := strconv.Atoi(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("average %q: %w", a, err)
		}
		rd := filepath.Join(dir, fmt.Sprintf("avg-%dk", kib))
		r, err := measure(ctx, rd, kib<<10, dump1, dump2)
		if err != nil {
			return fmt.Errorf("average %d KiB: %w", kib, err)
		}
		if err := os.RemoveAll(rd); err != nil {
			return err
		}
		rows = append(rows, r)
	}
	var ref uint64 // the default average's total, if measured
	for _, r := range rows {
		if r.avg == 1<<20 {
			ref = r.second.total
		}
	}
	for _, r := range rows {
		vs := "-"
		if ref > 0 {
			vs = fmt.Sprintf("%.2f", float64(r.second.total)/float64(ref))
		}
		fmt.Printf("%7d %8d %9.2f %8.1f | %9.2f %9.2f %9.2f %8d %7s\n", r.avg>>10, r.blobs1, mb(r.first.total),
			r.stream1.Seconds(), mb(r.second.packs), mb(r.second.index), mb(r.second.total), r.blobs2, vs)
	}
	return nil
}

type row struct {
	avg            int
	blobs1, blobs2 int
	first, second  sizes // added by each dump
	stream1        time.Duration
}

func mb(n uint64) float64 { return float64(n) / 1e6 }

func measure(ctx context.Context, dir string, avg int, dump1, dump2 string) (row, error) {
	res := row{avg: avg}
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
		blobs, err := streamFile(ctx, dir, kdf, avg, dump)
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
func streamFile(ctx context.Context, dir string, kdf repo.KDFParams, avg int, name string) (int, error) {
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
	res, err := backup.Stream(ctx, r, f, "databases/dump.sql", backup.Options{ChunkAverage: avg})
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
