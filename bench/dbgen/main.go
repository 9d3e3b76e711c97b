// Command dbgen writes the SQL of a site-like MariaDB database for the
// database benchmark (bench/db.sh), made deterministically from a seed, and
// the SQL of a day's changes to it.
//
//	dbgen [-mb 300] [-seed 1] | mariadb site              create and fill the tables
//	dbgen [-mb 300] [-seed 1] -change 1 | mariadb site    round 1 of changes
//
// The tables are those of a blog with a shop: posts (long bodies of
// WordPress block markup around generated English prose), comments, orders
// (customers, addresses, JSON line items) and options (PHP serialized
// arrays). Text is drawn from a common-English vocabulary with Zipf-like
// word frequencies, so it compresses like prose rather than like padding.
// The row counts follow from -mb so that mariadb-dump's output is about
// that many MB (10^6 bytes); by bytes: posts 46%, comments 33%, orders 18%,
// options 3%.
//
// -change N writes round N of changes, to be applied after rounds 1..N-1:
// in every table, -append percent new rows (appended: higher ids, later
// dates) and -update percent of the existing rows updated, chosen at random
// over the whole table (a post's paragraph rewritten, a comment approved,
// trashed or edited, an order's status changed, an option's value
// replaced). The same seed, size and round always give the same SQL.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	mb := flag.Float64("mb", 300, "approximate size of the database's dump in MB (10^6 bytes)")
	seed := flag.Uint64("seed", 1, "seed: the same seed and size give the same database")
	change := flag.Int("change", 0, "write round N of changes instead of the database")
	appendPct := flag.Float64("append", 1, "with -change: new rows, in percent of each table's rows")
	updatePct := flag.Float64("update", 0.1, "with -change: updated rows, in percent of each table's rows")
	flag.Parse()
	if flag.NArg() > 0 || *mb <= 0 || *change < 0 {
		flag.Usage()
		os.Exit(2)
	}
	g := newGen(*seed, *mb)
	w := &countingWriter{w: os.Stdout}
	bw := bufio.NewWriterSize(w, 1<<20)
	var summary string
	if *change == 0 {
		summary = g.writeDatabase(bw)
	} else {
		summary = g.writeChange(bw, *change, *appendPct, *updatePct)
	}
	err := bw.Flush()
	if err == nil {
		err = w.err // bufio stops writing after the first error, which it returns
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbgen:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "dbgen: %s; %d bytes of SQL\n", summary, w.n)
}

func newGen(seed uint64, mb float64) *gen {
	g := &gen{
		seed:    seed,
		initial: map[string]int{},
		step:    map[string]time.Duration{},
		base:    time.Date(2017, 3, 1, 8, 0, 0, 0, time.UTC),
	}
	for _, t := range tables {
		n := max(20, int(math.Round(mb*1e6*t.share/t.rowBytes)))
		g.initial[t.name] = n
		// Eight years of rows.
		g.step[t.name] = 8 * 365 * 24 * time.Hour / time.Duration(n)
	}
	return g
}

// counts returns each table's rows before round (round 1 is the initial
// database).
func (g *gen) counts(round int, appendPct float64) map[string]int {
	c := map[string]int{}
	for _, t := range tables {
		n := g.initial[t.name]
		for range round - 1 {
			n += added(n, appendPct)
		}
		c[t.name] = n
	}
	return c
}

func added(n int, pct float64) int { return max(1, int(math.Round(float64(n)*pct/100))) }

func (g *gen) writeDatabase(w *bufio.Writer) string {
	w.WriteString("-- site database written by bench/dbgen\nSET NAMES utf8mb4;\nSET autocommit=0, unique_checks=0, foreign_key_checks=0;\n\n")
	var parts []string
	for _, t := range tables {
		fmt.Fprintf(w, "DROP TABLE IF EXISTS %s;\n%s;\n", t.name, t.create)
		n := g.initial[t.name]
		g.writeRows(w, t, 1, n)
		w.WriteString("COMMIT;\n\n")
		parts = append(parts, fmt.Sprintf("%s %d", t.name, n))
	}
	return "rows: " + strings.Join(parts, ", ")
}

func (g *gen) writeChange(w *bufio.Writer, round int, appendPct, updatePct float64) string {
	fmt.Fprintf(w, "-- round %d of changes written by bench/dbgen\nSET NAMES utf8mb4;\nSET autocommit=0;\n\n", round)
	before := g.counts(round, appendPct)
	var parts []string
	for _, t := range tables {
		n := before[t.name]
		add := added(n, appendPct)
		g.writeRows(w, t, n+1, n+add)
		ids := g.pickRows(t, round, n, added(n, updatePct))
		for _, id := range ids {
			key := "id"
			if t.name == "options" {
				key = "option_id"
			}
			fmt.Fprintf(w, "UPDATE %s SET %s WHERE %s = %d;\n", t.name, t.update(g, t, id, round), key, id)
		}
		w.WriteString("COMMIT;\n\n")
		parts = append(parts, fmt.Sprintf("%s %d+%d, %d updated", t.name, n, add, len(ids)))
	}
	return fmt.Sprintf("round %d: %s", round, strings.Join(parts, "; "))
}

// pickRows chooses k distinct rows of 1..n, in ascending order.
func (g *gen) pickRows(t *table, round, n, k int) []int {
	r := rand.New(rand.NewPCG(g.seed^0x5eed, t.stream<<32|uint64(round)))
	k = min(k, n)
	seen := map[int]bool{}
	var ids []int
	for len(ids) < k {
		id := 1 + r.IntN(n)
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// writeRows writes rows from..to in INSERT statements of about 1 MB.
func (g *gen) writeRows(w *bufio.Writer, t *table, from, to int) {
	const batch = 1 << 20
	size := 0
	for id := from; id <= to; id++ {
		row := "(" + strings.Join(t.row(g, t, id), ",") + ")"
		if size == 0 {
			fmt.Fprintf(w, "INSERT INTO %s (%s) VALUES\n%s", t.name, t.cols, row)
		} else {
			w.WriteString(",\n" + row)
		}
		size += len(row)
		if size >= batch || id == to {
			w.WriteString(";\n")
			size = 0
		}
	}
}

type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}
