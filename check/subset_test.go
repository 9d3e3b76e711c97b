package check

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/escrow-backup/escrow/repo"
)

func TestSelectSubsetPartsCoverEveryPackOnce(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	ids := make([]repo.ID, 1000)
	for i := range ids {
		for j := range ids[i] {
			ids[i][j] = byte(rnd.Uint32())
		}
	}
	for parts := 1; parts <= 7; parts++ {
		seen := map[repo.ID]int{}
		for part := 1; part <= parts; part++ {
			for _, id := range selectSubset(ids, Options{SubsetPart: part, SubsetParts: parts}) {
				seen[id]++
			}
		}
		for _, id := range ids {
			if seen[id] != 1 {
				t.Fatalf("%d parts: pack %s read %d times", parts, id.Str(), seen[id])
			}
		}
	}
}

func TestSelectSubsetFraction(t *testing.T) {
	ids := make([]repo.ID, 30)
	for i := range ids {
		ids[i][0] = byte(i)
	}
	tests := []struct {
		n        int
		fraction float64
		want     int
	}{
		{30, 0.1, 3},
		{30, 0.01, 1}, // at least one
		{5, 0.1, 1},
		{30, 1, 30},
		{1, 0.5, 1},
		{0, 0.5, 0},
	}
	for _, tt := range tests {
		got := selectSubset(ids[:tt.n], Options{SubsetFraction: tt.fraction})
		seen := map[repo.ID]bool{}
		for _, id := range got {
			seen[id] = true
		}
		if len(got) != tt.want || len(seen) != tt.want {
			t.Errorf("%v of %d packs: got %d (%d distinct), want %d", tt.fraction, tt.n, len(got), len(seen), tt.want)
		}
	}
}

func TestSetSubset(t *testing.T) {
	tests := []struct {
		in          string
		fraction    float64
		part, parts int
		ok          bool
	}{
		{"10%", 0.1, 0, 0, true},
		{"100%", 1, 0, 0, true},
		{"2.5%", 0.025, 0, 0, true},
		{"1/5", 0, 1, 5, true},
		{"5/5", 0, 5, 5, true},
		{"0%", 0, 0, 0, false},
		{"101%", 0, 0, 0, false},
		{"NaN%", 0, 0, 0, false},
		{"x%", 0, 0, 0, false},
		{"0/5", 0, 0, 0, false},
		{"6/5", 0, 0, 0, false},
		{"1/0", 0, 0, 0, false},
		{"1/x", 0, 0, 0, false},
		{"10", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		var o Options
		err := o.SetSubset(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("%q: err %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (math.Abs(o.SubsetFraction-tt.fraction) > 1e-12 || o.SubsetPart != tt.part || o.SubsetParts != tt.parts) {
			t.Errorf("%q: got %v %d/%d", tt.in, o.SubsetFraction, o.SubsetPart, o.SubsetParts)
		}
		if tt.ok {
			if err := o.fill(); err != nil || !o.ReadData {
				t.Errorf("%q: fill: %v, ReadData %v", tt.in, err, o.ReadData)
			}
		}
	}
}

func TestOptionsRejected(t *testing.T) {
	tests := []Options{
		{SubsetFraction: -0.1},
		{SubsetFraction: 1.5},
		{SubsetFraction: math.NaN()},
		{SubsetPart: 0, SubsetParts: 3},
		{SubsetPart: 4, SubsetParts: 3},
		{SubsetPart: 1},
		{SubsetParts: -1},
		{SubsetFraction: 0.5, SubsetPart: 1, SubsetParts: 2},
	}
	for _, o := range tests {
		if err := o.fill(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
