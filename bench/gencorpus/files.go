package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// The -files corpus: many small files in a deep-ish tree, as a site with
// its plugins, vendored libraries and uploads looks. It is for the agent's
// benchmark (bench/agent.sh), where the number of files and directories
// matters more than the bytes:
//
//   - 98% text files (PHP, JS, CSS, HTML, JSON; 100 B to 16 KB, log-uniform:
//     mean about 3 KB), spread over about files/10 directories at depths 2
//     to 9 (mostly 5 to 8), some directories holding many files and most a few;
//   - 2% "images" (10 KB to 500 KB of random bytes, mean about 125 KB) in
//     uploads/YYYY/MM folders.
//
// At 100,000 files that is about 10,000 directories and 0.55 GB.
//
// With -mb as well (the scale benchmark, bench/scale.sh), the bytes beyond
// those files, if the size asks for more, go into large files in a
// private/ part of the tree, so the corpus is mostly incompressible, as
// sites with media are, with some compressible text:
//
//   - 85% in "archives" and "videos" of random bytes (20 MB to 1 GB,
//     log-uniform);
//   - 15% in mysqldump-like SQL files (50 MB to 500 MB), compressible
//     about 3x.
//
// At 1,000,000 files and 20 GB that is about 5.5 GB in the small files and
// the images and 14.5 GB in some 80 large files.

const (
	filesPerDir   = 10
	imageFraction = 0.02
	maxDepth      = 10
)

// fileSpec is one file to write.
type fileSpec struct {
	rel    string
	ext    string // "jpg" for an image
	size   int
	stream uint64
}

// Large files of the scale corpus.
const (
	largeSQLFraction = 0.15
	largeMin         = 20_000_000
	largeMax         = 1_000_000_000
	sqlMin           = 50_000_000
	sqlMax           = 500_000_000 // -modify reads a whole SQL file into memory
)

// generateFiles writes the -files corpus of n files; totalBytes > 0 tops it
// up with large files to about that size.
func generateFiles(root string, n int, totalBytes int64, seed uint64) error {
	if n <= 0 {
		return errors.New("-files must be positive")
	}
	if ents, err := os.ReadDir(root); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s exists and is not empty", root)
	}
	r := newRand(seed, 100)
	codeDirs := treeDirs(r, max(1, n/filesPerDir))
	var uploads []string
	for y := 2019; y <= 2025; y++ {
		for m := 1; m <= 12; m++ {
			uploads = append(uploads, filepath.Join("public_html", "wp-content", "uploads", fmt.Sprint(y), fmt.Sprintf("%02d", m)))
		}
	}
	// Skewed weights: a few directories hold many files, most a few.
	cum := make([]float64, len(codeDirs))
	total := 0.0
	for i := range codeDirs {
		total += float64(logUniform(r, 1, 60))
		cum[i] = total
	}
	specs := make([]fileSpec, 0, n)
	for i := 0; i < n; i++ {
		if r.Float64() < imageFraction {
			specs = append(specs, fileSpec{
				rel: filepath.Join(pick(r, uploads), fmt.Sprintf("%s-%d.jpg", pick(r, words), i)),
				ext: "jpg", size: logUniform(r, 10_000, 500_000), stream: 1_000_000 + uint64(i),
			})
			continue
		}
		d := codeDirs[sort.SearchFloat64s(cum, r.Float64()*total)]
		ext := pick(r, exts)
		specs = append(specs, fileSpec{
			rel: filepath.Join(d, fmt.Sprintf("%s-%d.%s", pick(r, words), i, ext)),
			ext: ext, size: logUniform(r, 100, 16_000), stream: uint64(i),
		})
	}
	largeDirs := []string{
		filepath.Join("private", "backups", "db"),
		filepath.Join("private", "backups", "media"),
		filepath.Join("private", "video"),
	}
	var planned int64
	for _, s := range specs {
		planned += int64(s.size)
	}
	specs = append(specs, largeSpecs(newRand(seed, 101), totalBytes-planned, largeDirs)...)
	// Every directory exists, even one that got no file.
	for _, d := range append(append(codeDirs, uploads...), largeDirs...) {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	g := &gen{root: root, seed: seed}
	files, bytes, err := writeAll(g, specs)
	if err != nil {
		return err
	}
	fmt.Printf("files=%d dirs=%d bytes=%d\n", files, len(codeDirs)+len(uploads)+len(largeDirs), bytes)
	return nil
}

// largeSpecs plans large files holding about budget bytes (none when it is
// not positive): SQL dumps first, then random files; the last of each kind
// takes what is left of its share.
func largeSpecs(r *rand.Rand, budget int64, dirs []string) []fileSpec {
	if budget <= 0 {
		return nil
	}
	var specs []fileSpec
	plan := func(share int64, lo, hi int, ext, dir, name string, stream uint64) {
		for i := 0; share > 0; i++ {
			size := int64(logUniform(r, float64(lo), float64(hi)))
			if share-size < int64(lo) {
				size = share // the remainder, rather than a file below the minimum
			}
			specs = append(specs, fileSpec{
				rel: filepath.Join(dir, fmt.Sprintf("%s-%d.%s", name, i, ext)),
				ext: ext, size: int(size), stream: stream + uint64(i),
			})
			share -= size
		}
	}
	sql := int64(float64(budget) * largeSQLFraction)
	plan(sql, sqlMin, sqlMax, "sql", dirs[0], "shop-dump", 2_000_000)
	rest := budget - sql
	plan(rest/2, largeMin, largeMax, "tar.gz", dirs[1], "media-archive", 3_000_000)
	plan(rest-rest/2, largeMin, largeMax, "mp4", dirs[2], "clip", 4_000_000)
	return specs
}

// treeDirs makes n distinct directory paths: the usual top-level parts of a
// site, then a random recursive tree below them (each new directory goes
// under a directory chosen at random, less often the deeper it is), capped
// at maxDepth.
func treeDirs(r *rand.Rand, n int) []string {
	seen := map[string]bool{}
	var dirs []string
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	for _, t := range top {
		for i := range t {
			add(filepath.Join(t[:i+1]...))
		}
	}
	for len(dirs) < n {
		parent := dirs[r.IntN(len(dirs))]
		depth := strings.Count(parent, "/") + 1
		if depth >= 4+r.IntN(maxDepth-4) {
			continue // deeper directories are rarer
		}
		var name string
		if depth < 3+len(levels) && r.IntN(3) > 0 {
			name = pick(r, levels[min(max(depth-2, 0), len(levels)-1)])
		} else {
			name = pick(r, words)
		}
		add(filepath.Join(parent, name))
	}
	return dirs
}

// writeAll writes the files on all cores; each file's bytes come from its
// own stream, so the result does not depend on the order.
func writeAll(g *gen, specs []fileSpec) (int, int64, error) {
	var next atomic.Int64
	var bytes atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(specs) {
					return
				}
				n, err := writeSpec(g, specs[i])
				if err != nil {
					errs[w] = err
					next.Store(int64(len(specs)))
					return
				}
				bytes.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	return len(specs), bytes.Load(), errors.Join(errs...)
}

func writeSpec(g *gen, s fileSpec) (int, error) {
	// Large files are streamed; g's counters are not used by writeAll.
	switch s.ext {
	case "sql":
		return s.size, (&gen{root: g.root, seed: g.seed}).writeSQL(s.rel, s.size, s.stream)
	case "tar.gz":
		return s.size, (&gen{root: g.root, seed: g.seed}).writeRandom(s.rel, s.size, s.stream, gzipHeader)
	case "mp4":
		return s.size, (&gen{root: g.root, seed: g.seed}).writeRandom(s.rel, s.size, s.stream, mp4Header)
	}
	var b []byte
	if s.ext == "jpg" {
		b = make([]byte, s.size)
		_, _ = chachaFor(g.seed, s.stream).Read(b)
		copy(b, jpegHeader)
	} else {
		b = textBytes(newRand(g.seed, 10_000_000+s.stream), s.ext, s.size)
	}
	p := filepath.Join(g.root, s.rel)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return 0, err
	}
	return len(b), nil
}
