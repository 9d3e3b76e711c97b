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

// generateFiles writes the -files corpus of n files.
func generateFiles(root string, n int, seed uint64) error {
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
	// Every directory exists, even one that got no file.
	for _, d := range append(codeDirs, uploads...) {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	g := &gen{root: root, seed: seed}
	files, bytes, err := writeAll(g, specs)
	if err != nil {
		return err
	}
	fmt.Printf("files=%d dirs=%d bytes=%d\n", files, len(codeDirs)+len(uploads), bytes)
	return nil
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
