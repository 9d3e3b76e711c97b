// Command gencorpus writes the benchmark corpus: a website-like file tree made
// deterministically from a seed, and can change a fixed set of its files.
//
//	gencorpus -dir DIR [-mb 300] [-seed 1]          write a new corpus into DIR
//	gencorpus -dir DIR -files 100000 [-seed 1]      write a many-small-files corpus (files.go)
//	gencorpus -dir DIR -files 1000000 -mb 20000     the same, topped up with large files (files.go)
//	gencorpus -dir DIR -modify 10 [-seed 1]         change 10 files of either
//
// The same seed and size always give the same bytes. The tree has, by size:
//
//   - about 40% small text files (PHP, JS, CSS, HTML, JSON; 200 B to 30 KB,
//     log-uniform, so most are a few KB: about 20,000 files at 300 MB), which
//     compress well and are each smaller than one chunk;
//   - about 30% medium "images" (50 KB to 2 MB of random bytes behind a JPEG
//     header), which do not compress;
//   - about 30% in two large files: a compressible SQL dump (17%) and an
//     incompressible archive (13%): 51 MB and 39 MB at 300 MB.
//
// Files sit 3 to 6 directories below DIR. The program prints the number of
// files and their total size in bytes.
//
// -modify N changes N existing files, chosen deterministically from the
// sorted list of files: the SQL dump (rows inserted in the middle, as a daily
// database dump would), one image (a 4 KB region rewritten) and N-2 small
// text files (a few lines inserted); in a -files corpus, which has no SQL
// dump, one image and N-1 text files. Running it again changes other files
// (the chosen files differ by -round). It prints the changed files, then
// the times of the first and the last write (first_write_ns=, last_write_ns=,
// Unix nanoseconds), which the agent benchmark measures from.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	dir := flag.String("dir", "", "corpus directory (required)")
	mb := flag.Float64("mb", 300, "approximate corpus size in MB (10^6 bytes)")
	files := flag.Int("files", 0, "write a corpus of this many small files (see files.go) instead of -mb")
	seed := flag.Uint64("seed", 1, "seed: the same seed and size give the same corpus")
	modify := flag.Int("modify", 0, "change this many existing files instead of writing a corpus")
	round := flag.Uint64("round", 1, "with -modify: which round of changes (each round changes other files)")
	save := flag.String("save", "", "with -modify: first copy each file it changes, with its times, to the same path under this directory")
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	switch {
	case *modify > 0:
		err = modifyCorpus(*dir, *seed, *round, *modify, *save)
	case *files > 0:
		// -mb with -files: top up to that size (its default, 300, is
		// below what the small files alone hold from 55,000 files on).
		var total int64
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "mb" {
				total = int64(*mb * 1e6)
			}
		})
		err = generateFiles(*dir, *files, total, *seed)
	default:
		err = generate(*dir, *mb, *seed)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencorpus:", err)
		os.Exit(1)
	}
}

// ---------------------------------------------------------------- generate

type gen struct {
	root  string
	seed  uint64
	files int
	bytes int64
}

func newRand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

func chachaFor(seed, stream uint64) *rand.ChaCha8 {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[0:], seed)
	binary.LittleEndian.PutUint64(k[8:], stream)
	copy(k[16:], "escrow-bench-cor")
	return rand.NewChaCha8(k)
}

func generate(root string, mb float64, seed uint64) error {
	if mb <= 0 {
		return errors.New("-mb must be positive")
	}
	if ents, err := os.ReadDir(root); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s exists and is not empty", root)
	}
	g := &gen{root: root, seed: seed}
	total := mb * 1e6
	r := newRand(seed, 1)

	// Directory tree: leaf folders at depth 3..6 under a few top-level parts.
	smallBudget := int64(total * 0.40)
	imageBudget := int64(total * 0.30)
	sqlSize := int64(total * 0.17)
	binSize := int64(total * 0.13)

	// Small text files. Mean of log-uniform(200, 30000) is about 5.9 KB.
	var codeDirs []string
	nDirs := max(4, int(float64(smallBudget)/5950/22))
	seen := map[string]bool{}
	for len(codeDirs) < nDirs {
		d := codeDir(r)
		if !seen[d] {
			seen[d] = true
			codeDirs = append(codeDirs, d)
		}
	}
	var spent int64
	for i := 0; spent < smallBudget; i++ {
		d := codeDirs[r.IntN(len(codeDirs))]
		ext := pick(r, exts)
		size := logUniform(r, 200, 30000)
		name := fmt.Sprintf("%s-%d.%s", pick(r, words), i, ext)
		if err := g.writeText(filepath.Join(d, name), ext, size, uint64(i)); err != nil {
			return err
		}
		spent += int64(size)
	}

	// Images, in uploads/YYYY/MM or uploads/YYYY/gallery-NAME (depth 5).
	spent = 0
	for i := 0; spent < imageBudget; i++ {
		size := logUniform(r, 50_000, 2_000_000)
		if rem := imageBudget - spent; int64(size) > rem {
			size = int(max(rem, 50_000))
		}
		month := fmt.Sprintf("%02d", 1+r.IntN(12))
		if r.IntN(4) == 0 {
			month = "gallery-" + pick(r, words)
		}
		d := filepath.Join("public_html", "wp-content", "uploads", fmt.Sprint(2019+r.IntN(7)), month)
		name := fmt.Sprintf("%s-%d.jpg", pick(r, words), i)
		if err := g.writeRandom(filepath.Join(d, name), size, 1_000_000+uint64(i), jpegHeader); err != nil {
			return err
		}
		spent += int64(size)
	}

	// Large files.
	if err := g.writeSQL(filepath.Join("private", "backups", "db", "shop-dump.sql"), int(sqlSize), 2); err != nil {
		return err
	}
	if err := g.writeRandom(filepath.Join("private", "backups", "media", "media-archive.tar.gz"), int(binSize), 3, gzipHeader); err != nil {
		return err
	}
	fmt.Printf("files=%d bytes=%d\n", g.files, g.bytes)
	return nil
}

var (
	exts       = []string{"php", "php", "php", "js", "js", "css", "html", "json"}
	jpegHeader = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00}
	gzipHeader = []byte{0x1F, 0x8B, 0x08, 0x00}
	mp4Header  = []byte{0x00, 0x00, 0x00, 0x20, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm'}
	top        = [][]string{
		{"public_html", "wp-content", "themes"},
		{"public_html", "wp-content", "plugins"},
		{"public_html", "wp-includes"},
		{"public_html", "wp-admin"},
		{"public_html", "vendor"},
		{"apps", "shop", "src"},
	}
	levels = [][]string{
		{"storefront", "astra", "woocommerce", "jetpack", "yoast", "elementor", "akismet", "contact-form", "symfony", "guzzle", "monolog", "twig"},
		{"includes", "assets", "src", "lib", "templates", "admin", "blocks", "modules"},
		{"js", "css", "parts", "widgets", "rest-api", "fields", "legacy", "compat"},
		{"v1", "v2", "common", "dist", "partials", "utils"},
	}
	words = makeWords()
)

// codeDir picks a folder at depth 3..6.
func codeDir(r *rand.Rand) string {
	parts := append([]string(nil), pick(r, top)...)
	want := 3 + r.IntN(4)
	for i := 0; len(parts) < want; i++ {
		parts = append(parts, pick(r, levels[min(i, len(levels)-1)]))
	}
	return filepath.Join(parts...)
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func logUniform(r *rand.Rand, lo, hi float64) int {
	return int(math.Exp(math.Log(lo) + r.Float64()*(math.Log(hi)-math.Log(lo))))
}

// makeWords makes a fixed vocabulary of identifier-like words.
func makeWords() []string {
	base := []string{"user", "post", "cart", "order", "item", "price", "query", "cache", "render", "field",
		"option", "meta", "term", "widget", "block", "theme", "plugin", "admin", "ajax", "nonce", "session",
		"customer", "product", "shipping", "payment", "tax", "coupon", "menu", "nav", "header", "footer",
		"sidebar", "image", "gallery", "thumb", "title", "content", "excerpt", "author", "date", "status",
		"config", "request", "response", "handler", "filter", "action", "hook", "event", "value", "list"}
	r := newRand(42, 42)
	out := append([]string(nil), base...)
	for len(out) < 1500 {
		a, b := pick(r, base), pick(r, base)
		switch r.IntN(3) {
		case 0:
			out = append(out, a+"_"+b)
		case 1:
			out = append(out, a+strings.ToUpper(b[:1])+b[1:])
		default:
			out = append(out, fmt.Sprintf("%s%d", a, r.IntN(100)))
		}
	}
	return out
}

func (g *gen) create(rel string) (*os.File, error) {
	p := filepath.Join(g.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
}

func (g *gen) finish(f *os.File, n int) error {
	if err := f.Close(); err != nil {
		return err
	}
	g.files++
	g.bytes += int64(n)
	return nil
}

func (g *gen) writeText(rel, ext string, size int, stream uint64) error {
	f, err := g.create(rel)
	if err != nil {
		return err
	}
	r := newRand(g.seed, 10_000_000+stream)
	b := textBytes(r, ext, size)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return g.finish(f, len(b))
}

// textBytes returns exactly size bytes of source-code-like text.
func textBytes(r *rand.Rand, ext string, size int) []byte {
	b := make([]byte, 0, size+256)
	switch ext {
	case "php":
		b = append(b, "<?php\n/**\n * Generated for the escrow benchmark.\n */\n\n"...)
	case "html":
		b = append(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"></head>\n<body>\n"...)
	case "json":
		b = append(b, "{\n"...)
	}
	for len(b) < size {
		b = appendLine(b, r, ext)
	}
	b = b[:size]
	if size > 0 {
		b[size-1] = '\n'
	}
	return b
}

func appendLine(b []byte, r *rand.Rand, ext string) []byte {
	w := func() string { return pick(r, words) }
	ind := strings.Repeat("    ", r.IntN(4))
	var s string
	switch ext {
	case "php":
		switch r.IntN(6) {
		case 0:
			s = fmt.Sprintf("%sfunction %s_%s( $%s, $%s = null ) {", ind, w(), w(), w(), w())
		case 1:
			s = fmt.Sprintf("%s$%s = get_option( '%s_%s', array() );", ind, w(), w(), w())
		case 2:
			s = fmt.Sprintf("%sif ( ! empty( $%s['%s'] ) && %d < count( $%s ) ) {", ind, w(), w(), r.IntN(100), w())
		case 3:
			s = fmt.Sprintf("%sreturn apply_filters( '%s_%s', $%s, $%s );", ind, w(), w(), w(), w())
		case 4:
			s = fmt.Sprintf("%s// %s the %s before %s (see #%d).", ind, w(), w(), w(), r.IntN(90000))
		default:
			s = ind + "}"
		}
	case "js":
		switch r.IntN(5) {
		case 0:
			s = fmt.Sprintf("%sconst %s = document.querySelector('.%s-%s');", ind, w(), w(), w())
		case 1:
			s = fmt.Sprintf("%sfunction %s(%s, %s) {", ind, w(), w(), w())
		case 2:
			s = fmt.Sprintf("%s%s.addEventListener('click', (e) => { %s(e, %d); });", ind, w(), w(), r.IntN(1000))
		case 3:
			s = fmt.Sprintf("%sreturn fetch('/wp-json/%s/v%d/%s').then((r) => r.json());", ind, w(), 1+r.IntN(3), w())
		default:
			s = ind + "}"
		}
	case "css":
		s = fmt.Sprintf(".%s-%s .%s {\n  margin: %dpx %dpx;\n  color: #%06x;\n}", w(), w(), w(), r.IntN(40), r.IntN(40), r.IntN(1<<24))
	case "html":
		s = fmt.Sprintf("%s<div class=\"%s %s\"><a href=\"/%s/%s\">%s %s</a></div>", ind, w(), w(), w(), w(), w(), w())
	default: // json
		s = fmt.Sprintf("  \"%s_%s\": {\"id\": %d, \"%s\": \"%s\", \"enabled\": %t},", w(), w(), r.IntN(1e6), w(), w(), r.IntN(2) == 0)
	}
	b = append(b, s...)
	return append(b, '\n')
}

// writeRandom writes size incompressible bytes after a header.
func (g *gen) writeRandom(rel string, size int, stream uint64, header []byte) error {
	f, err := g.create(rel)
	if err != nil {
		return err
	}
	c := chachaFor(g.seed, stream)
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 1<<20)
	n := 0
	for n < size {
		k := min(len(buf), size-n)
		_, _ = c.Read(buf[:k])
		if n == 0 {
			copy(buf, header)
		}
		if _, err := w.Write(buf[:k]); err != nil {
			f.Close()
			return err
		}
		n += k
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return g.finish(f, n)
}

// writeSQL writes a mysqldump-like file of about size bytes.
func (g *gen) writeSQL(rel string, size int, stream uint64) error {
	f, err := g.create(rel)
	if err != nil {
		return err
	}
	r := newRand(g.seed, stream)
	w := bufio.NewWriterSize(f, 1<<20)
	n, _ := w.WriteString("-- MySQL dump 10.13  Distrib 8.0.36\n-- Host: localhost    Database: shop\n\nSET NAMES utf8mb4;\n")
	id := 0
	for n < size {
		table := pick(r, sqlTables)
		m, _ := fmt.Fprintf(w, "\nLOCK TABLES `%s` WRITE;\nINSERT INTO `%s` VALUES ", table, table)
		n += m
		for i := 0; i < 200 && n < size; i++ {
			line := sqlRow(r, id)
			id++
			if i > 0 {
				m, _ = w.WriteString(",")
				n += m
			}
			m, _ = w.WriteString(line)
			n += m
		}
		m, _ = w.WriteString(";\nUNLOCK TABLES;\n")
		n += m
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return g.finish(f, n)
}

var sqlTables = []string{"wp_posts", "wp_postmeta", "wp_options", "wp_users", "wp_usermeta", "wp_woocommerce_order_items", "wp_comments"}

func sqlRow(r *rand.Rand, id int) string {
	w := func() string { return pick(r, words) }
	return fmt.Sprintf("(%d,%d,'2024-%02d-%02d %02d:%02d:%02d','%s %s %s','%s-%s-%d','%s',%d.%02d)",
		id, r.IntN(5000), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60),
		w(), w(), w(), w(), w(), r.IntN(10000), pick(r, []string{"publish", "draft", "private", "trash"}),
		r.IntN(1000), r.IntN(100))
}

// ------------------------------------------------------------------ modify

func modifyCorpus(root string, seed, round uint64, n int, saveDir string) error {
	var texts, images []string
	var sqlFile string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		switch filepath.Ext(p) {
		case ".sql":
			sqlFile = p
		case ".jpg":
			images = append(images, p)
		case ".php", ".js", ".css", ".html", ".json":
			texts = append(texts, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(texts)
	sort.Strings(images)
	if len(images) == 0 || len(texts) < n {
		return fmt.Errorf("%s does not look like a corpus made by gencorpus", root)
	}
	r := newRand(seed, 0xC0FFEE+round)
	var changed []string
	var first, last time.Time
	defer func() {
		for _, c := range changed {
			rel, _ := filepath.Rel(root, c)
			fmt.Println("changed", rel)
		}
		if len(changed) > 0 {
			fmt.Printf("first_write_ns=%d\nlast_write_ns=%d\n", first.UnixNano(), last.UnixNano())
		}
	}()
	// keep copies name to saveDir (when set), so that the change can be
	// undone: bench/scale.sh gives the second tool the first tool's tree.
	keep := func(name string) error {
		if saveDir == "" {
			return nil
		}
		return saveCopy(root, name, saveDir)
	}
	stamp := func() {
		last = time.Now()
		if first.IsZero() {
			first = last
		}
	}
	// The SQL dump (not in a -files corpus): a block of rows inserted in
	// the middle.
	if sqlFile != "" {
		if err := keep(sqlFile); err != nil {
			return err
		}
		stamp()
		if err := insertLines(sqlFile, r, func(b []byte) []byte {
			for i := 0; i < 50; i++ {
				b = append(b, "INSERT INTO `wp_postmeta` VALUES "...)
				b = append(b, sqlRow(r, 9_000_000+i)...)
				b = append(b, ";\n"...)
			}
			return b
		}); err != nil {
			return err
		}
		changed = append(changed, sqlFile)
	}
	// One image: a 4 KB region rewritten in place.
	img := images[r.IntN(len(images))]
	if err := keep(img); err != nil {
		return err
	}
	stamp()
	if err := rewriteRegion(img, r); err != nil {
		return err
	}
	changed = append(changed, img)
	// Small text files: a few lines inserted.
	picked := map[int]bool{}
	for len(changed) < n {
		i := r.IntN(len(texts))
		if picked[i] {
			continue
		}
		picked[i] = true
		ext := strings.TrimPrefix(filepath.Ext(texts[i]), ".")
		if err := keep(texts[i]); err != nil {
			return err
		}
		stamp()
		if err := insertLines(texts[i], r, func(b []byte) []byte {
			for k := 0; k < 3+r.IntN(5); k++ {
				b = appendLine(b, r, ext)
			}
			return b
		}); err != nil {
			return err
		}
		changed = append(changed, texts[i])
	}
	last = time.Now()
	return nil
}

// saveCopy copies name, a file below root, to the same relative path below
// dir, with its mode and modification time.
func saveCopy(root, name, dir string) error {
	rel, err := filepath.Rel(root, name)
	if err != nil {
		return err
	}
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// insertLines inserts what add appends at a line start near a random point.
func insertLines(name string, r *rand.Rand, add func([]byte) []byte) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	at := len(data) / 4
	if len(data) > 0 {
		at += r.IntN(len(data)/2 + 1)
	}
	for at < len(data) && at > 0 && data[at-1] != '\n' {
		at++
	}
	out := make([]byte, 0, len(data)+8192)
	out = append(out, data[:at]...)
	out = add(out)
	out = append(out, data[at:]...)
	return writeInPlace(name, out)
}

func rewriteRegion(name string, r *rand.Rand) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	k := min(4096, len(data))
	at := r.IntN(len(data) - k + 1)
	for i := at; i < at+k; i++ {
		data[i] = byte(r.Uint32())
	}
	return writeInPlace(name, data)
}

// writeInPlace rewrites the file (same inode, new mtime).
func writeInPlace(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
