package repo

// Fuzz targets for every decoder that reads bytes from the store. Everything
// in a repository is untrusted input: the decoders must never panic, and
// whatever they accept must satisfy the invariants later code relies on.
//
// Run them with scripts/fuzz.sh; `go test` runs the seeds below and the
// corpus in testdata/fuzz (inputs the fuzzer once found, kept as regressions).

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// testKey is a fixed master key, so that packs sealed for the seeds can be
// opened in every fuzz worker.
func testKey() *Key {
	k := &Key{}
	for i := range k.encrypt {
		k.encrypt[i] = byte(i + 1)
	}
	for i := range k.mac.K {
		k.mac.K[i] = byte(0x40 + i)
		k.mac.R[i] = byte(0x80 + i)
	}
	k.mac.maskR()
	return k
}

type blobSpec struct {
	typ      BlobType
	plain    []byte
	compress bool
}

// buildPack writes a pack the way Writer does: sealed blobs, sealed header,
// header length.
func buildPack(tb testing.TB, k *Key, c *codec, specs []blobSpec) ([]byte, []PackedBlob) {
	tb.Helper()
	var pack []byte
	var blobs []PackedBlob
	for _, s := range specs {
		plain, ulen := s.plain, uint32(0)
		if s.compress {
			plain, ulen = c.enc.EncodeAll(s.plain, nil), uint32(len(s.plain))
		}
		sealed := k.Seal(nil, plain)
		blobs = append(blobs, PackedBlob{
			BlobHandle: BlobHandle{ID: Hash(s.plain), Type: s.typ},
			Offset:     uint32(len(pack)), Length: uint32(len(sealed)), UncompressedLength: ulen,
		})
		pack = append(pack, sealed...)
	}
	hdr := k.Seal(nil, encodeHeader(blobs))
	pack = append(pack, hdr...)
	pack = binary.LittleEndian.AppendUint32(pack, uint32(len(hdr)))
	return pack, blobs
}

func testCodec(tb testing.TB, limit uint64) *codec {
	tb.Helper()
	c, err := newCodecLimit(zstd.SpeedFastest, limit)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.close)
	return c
}

// checkPackBlobs states what ParseHeader promises about an accepted header.
func checkPackBlobs(t *testing.T, blobs []PackedBlob, packID ID, dataSize int64) {
	t.Helper()
	var off int64
	for i, b := range blobs {
		if int64(b.Offset) != off {
			t.Fatalf("blob %d starts at %d, want %d: blobs are not contiguous", i, b.Offset, off)
		}
		if b.Length < overhead || b.Length > maxBlobSize {
			t.Fatalf("blob %d has length %d", i, b.Length)
		}
		if b.Type != DataBlob && b.Type != TreeBlob {
			t.Fatalf("blob %d has type %v", i, b.Type)
		}
		if b.UncompressedLength > maxUnpackedSize {
			t.Fatalf("blob %d claims %d bytes uncompressed, more than the decoder ever returns", i, b.UncompressedLength)
		}
		if b.PackID != packID {
			t.Fatalf("blob %d has pack ID %s", i, b.PackID.Str())
		}
		off += int64(b.Length)
		if off > dataSize {
			t.Fatalf("blob %d ends at %d, past the %d bytes of blob data", i, off, dataSize)
		}
	}
	if off != dataSize {
		t.Fatalf("blobs cover %d bytes, want %d", off, dataSize)
	}
}

func FuzzParseHeader(f *testing.F) {
	id := ID{1, 2, 3}
	one := []PackedBlob{{BlobHandle: BlobHandle{ID: ID{9}, Type: DataBlob}, Length: 100}}
	mixed := []PackedBlob{
		{BlobHandle: BlobHandle{ID: ID{1}, Type: DataBlob}, Length: 40},
		{BlobHandle: BlobHandle{ID: ID{2}, Type: TreeBlob}, Length: 33, UncompressedLength: 7},
		{BlobHandle: BlobHandle{ID: ID{3}, Type: DataBlob}, Length: maxBlobSize, UncompressedLength: 1 << 20},
		{BlobHandle: BlobHandle{ID: ID{4}, Type: TreeBlob}, Length: 32},
	}
	f.Add(encodeHeader(one), int64(100))
	f.Add(encodeHeader(mixed), int64(40+33+maxBlobSize+32))
	f.Add(encodeHeader(mixed), int64(40))
	f.Add([]byte{}, int64(0))
	f.Add([]byte{hdrDataZ, 0xff, 0xff, 0xff, 0xff}, int64(-1))

	f.Fuzz(func(t *testing.T, hdr []byte, dataSize int64) {
		blobs, err := ParseHeader(hdr, id, dataSize)
		if err != nil {
			return
		}
		checkPackBlobs(t, blobs, id, dataSize)
		// Every accepted header is one Writer could have written.
		if got := encodeHeader(blobs); !bytes.Equal(got, hdr) {
			t.Fatalf("header does not survive a round trip:\n got %x\nwant %x", got, hdr)
		}
	})
}

// TestParseHeaderRejects covers headers too large for a fuzz seed (big
// seeds stall Go's fuzzer, golang/go#51484).
func TestParseHeaderRejects(t *testing.T) {
	blobs := func(n int, length, ulen uint32) []PackedBlob {
		out := make([]PackedBlob, n)
		for i := range out {
			out[i] = PackedBlob{BlobHandle: BlobHandle{ID: ID{byte(i)}, Type: DataBlob}, Length: length, UncompressedLength: ulen}
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		blobs    []PackedBlob
		dataSize int64
	}{
		// 65 blobs of 64 MiB: the last offset used to wrap past 4 GiB to 0.
		{"offsets past 4 GiB", blobs(65, maxBlobSize, 0), 65 * maxBlobSize},
		// OpenBlob allocates the uncompressed length before decoding.
		{"4 GiB uncompressed", blobs(1, 100, 1<<32-1), 100},
		{"limit plus one uncompressed", blobs(1, 100, maxUnpackedSize+1), 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := ParseHeader(encodeHeader(tc.blobs), ID{}, tc.dataSize); err == nil {
				t.Fatalf("accepted %d blobs, last at offset %d", len(got), got[len(got)-1].Offset)
			}
		})
	}
}

func FuzzDecodePack(f *testing.F) {
	k := testKey()
	c := testCodec(f, maxUnpackedSize)
	for _, specs := range [][]blobSpec{
		{{typ: DataBlob, plain: []byte("hello")}},
		{
			{typ: DataBlob, plain: bytes.Repeat([]byte("compressible "), 100), compress: true},
			{typ: DataBlob, plain: []byte{}},
			{typ: DataBlob, plain: []byte("plain")},
		},
		{{typ: TreeBlob, plain: []byte(`{"nodes":[]}` + "\n"), compress: true}},
		nil, // a pack with an empty header
	} {
		pack, _ := buildPack(f, k, c, specs)
		f.Add(pack)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, pack []byte) {
		id := Hash(pack)
		blobs, err := k.DecodePack(pack, id)
		if err != nil {
			return
		}
		hlen := int64(binary.LittleEndian.Uint32(pack[len(pack)-headerLengthSize:]))
		checkPackBlobs(t, blobs, id, int64(len(pack))-headerLengthSize-hlen)
		if got := PackSize(blobs); got != int64(len(pack)) {
			t.Fatalf("PackSize says %d, pack has %d bytes", got, len(pack))
		}
	})
}

func FuzzDecodeTree(f *testing.F) {
	mtime := time.Date(2023, 4, 5, 6, 7, 8, 123456789, time.UTC)
	sub := ID{7}
	tree := &Tree{}
	for _, n := range []*Node{
		{Name: "file.txt", Type: NodeFile, Mode: 0o640, ModTime: mtime, Size: 3, Links: 1, Content: []ID{{1}, {2}}},
		{Name: "empty", Type: NodeFile, Mode: 0o644, ModTime: mtime, Content: []ID{}},
		{Name: "dir", Type: NodeDir, Mode: 0o750 | 1<<31, ModTime: mtime, Subtree: &sub},
		{Name: "link", Type: NodeSymlink, LinkTarget: "file.txt"},
		{Name: "raw", Type: NodeSymlink, LinkTargetRaw: []byte{0xff, 'x'}},
		{Name: "ünï cödé", Type: NodeFIFO, ExtendedAttributes: []ExtendedAttribute{{Name: "user.a", Value: []byte{0}}}},
		{Name: "null", Type: NodeDev, Device: 259},
	} {
		if err := tree.Insert(n); err != nil {
			f.Fatal(err)
		}
	}
	buf, err := tree.encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(buf)
	f.Add([]byte(`{"nodes":[]}`))
	f.Add([]byte(`{"nodes":null}`))
	f.Add([]byte(`{"nodes":[null]}`))
	f.Add([]byte(`{"nodes":[{"name":"..","type":"dir","subtree":"` + sub.String() + `"}]}`))
	f.Add([]byte(`{"nodes":[{"name":"b","type":"file","content":[]},{"name":"a","type":"file","content":[]}]}`))
	f.Add([]byte(`{"nodes":[{"name":"a/b","type":"symlink"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTree(data)
		if err != nil {
			return
		}
		checkTree(t, tr)
		// A tree we accept can be stored again and reads back the same.
		buf, err := tr.encode()
		if err != nil {
			return // e.g. a time JSON can parse but not print; not a read problem
		}
		again, err := DecodeTree(buf)
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v\n%s", err, buf)
		}
		if len(again.Nodes) != len(tr.Nodes) {
			t.Fatalf("re-encoded tree has %d nodes, want %d", len(again.Nodes), len(tr.Nodes))
		}
	})
}

func checkTree(t *testing.T, tr *Tree) {
	t.Helper()
	for i, n := range tr.Nodes {
		if n == nil {
			t.Fatalf("node %d is nil", i)
		}
		if err := validName(n.Name); err != nil || n.Name == "." || n.Name == ".." || bytes.ContainsAny([]byte(n.Name), "/\x00") {
			t.Fatalf("accepted node name %q", n.Name)
		}
		if i > 0 && tr.Nodes[i-1].Name >= n.Name {
			t.Fatalf("accepted unsorted or duplicate names %q, %q", tr.Nodes[i-1].Name, n.Name)
		}
		if tr.Find(n.Name) != n {
			t.Fatalf("Find(%q) does not find the node", n.Name)
		}
		switch n.Type {
		case NodeDir:
			if n.Subtree == nil {
				t.Fatalf("dir %q without subtree", n.Name)
			}
		case NodeFile:
			if n.Content == nil {
				t.Fatalf("file %q without content list", n.Name)
			}
		case NodeSymlink, NodeDev, NodeCharDev, NodeFIFO, NodeSocket:
		default:
			t.Fatalf("node %q has type %q", n.Name, n.Type)
		}
	}
}

func FuzzIndexFile(f *testing.F) {
	seed := indexJSON{
		Supersedes: []ID{{0xaa}},
		Packs: []indexPackJSON{
			{ID: ID{1}, Blobs: []indexBlobJSON{
				{ID: ID{2}, Type: DataBlob, Offset: 0, Length: 100},
				{ID: ID{3}, Type: TreeBlob, Offset: 100, Length: 50, UncompressedLength: 400},
			}},
			{ID: ID{4}, Blobs: []indexBlobJSON{{ID: ID{2}, Type: DataBlob, Offset: 0, Length: 100}}},
			{ID: ID{1}, Blobs: []indexBlobJSON{{ID: ID{5}, Type: DataBlob, Offset: 150, Length: 33}}},
		},
	}
	buf, err := json.Marshal(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(buf)
	f.Add([]byte(`{"packs":[]}`))
	f.Add([]byte(`{"packs":[{"id":"` + ID{1}.String() + `","blobs":[{"id":"` + ID{2}.String() + `","type":"data","offset":0,"length":31}]}]}`))
	f.Add([]byte(`{"packs":[{"id":"` + ID{1}.String() + `","blobs":[{"id":"` + ID{2}.String() + `","type":"tree","offset":4294967295,"length":67108864,"uncompressed_length":4294967295}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ij indexJSON
		if json.Unmarshal(data, &ij) != nil {
			return
		}
		idx := NewIndex()
		if err := idx.addIndexFile(&ij); err != nil {
			return
		}
		for _, p := range ij.Packs {
			if _, ok := idx.Packs()[p.ID]; !ok {
				t.Fatalf("pack %s not indexed", p.ID.Str())
			}
			for _, b := range p.Blobs {
				pb, ok := idx.Lookup(BlobHandle{ID: b.ID, Type: b.Type})
				if !ok {
					t.Fatalf("blob %s not indexed", b.ID.Str())
				}
				if pb.Length < overhead || pb.Length > maxBlobSize || pb.UncompressedLength > maxUnpackedSize {
					t.Fatalf("accepted blob %s with length %d, uncompressed %d", b.ID.Str(), pb.Length, pb.UncompressedLength)
				}
			}
		}
		n := 0
		idx.Each(func(PackedBlob) { n++ })
		if n != idx.Len() {
			t.Fatalf("Each visits %d blobs, Len says %d", n, idx.Len())
		}
	})
}

func FuzzSnapshot(f *testing.F) {
	tree, parent := ID{1}, ID{2}
	sn := Snapshot{
		Time: time.Date(2023, 4, 5, 7, 0, 0, 0, time.UTC), Tree: &tree, Parent: &parent,
		Paths: []string{"/var/www"}, Hostname: "web1", Username: "root", Tags: []string{"daily", TagIncomplete},
		Excludes: []string{"*.tmp"}, ProgramVersion: "escrow 0.1",
		Summary: &Summary{FilesNew: 3, DataAdded: 1 << 20},
	}
	buf, err := json.Marshal(&sn)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(buf)
	// As restic 0.14 writes it.
	f.Add([]byte(`{"time":"2023-04-05T07:00:00.123456789+02:00","tree":"` + tree.String() + `","paths":["/shop.sql"],"hostname":"fixture","username":"root"}`))
	f.Add([]byte(`{"tree":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sn Snapshot
		if json.Unmarshal(data, &sn) != nil {
			return
		}
		// Exercise what commands do with a loaded snapshot.
		sn.HasTag(TagIncomplete)
		SnapshotFilter{Hosts: []string{"web1"}, Tags: []string{"daily"}, Paths: []string{"/var/www"}}.Match(&sn)
		_, _ = FindSnapshot([]*Snapshot{&sn}, "latest", SnapshotFilter{})
		_, _ = FindSnapshot([]*Snapshot{&sn}, "00", SnapshotFilter{})
		// What we save must load as the same snapshot.
		out, err := json.Marshal(&sn)
		if err != nil {
			return
		}
		var again Snapshot
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v\n%s", err, out)
		}
		out2, err := json.Marshal(&again)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("snapshot changes on a round trip (%v):\n%s\n%s", err, out, out2)
		}
	})
}

func FuzzKeyFile(f *testing.F) {
	const password = "escrow-test"
	master := testKey()
	// A cheap key (N=16) so that the fuzzer can reach the master key JSON.
	kf, err := newKeyFile(master, password, KDFParams{N: 16, R: 1, P: 1}, KeyOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(kf)
	// The key restic 0.14 wrote for the frozen repository.
	if keys, err := filepath.Glob("testdata/restic-repo/keys/*"); err == nil {
		for _, k := range keys {
			buf, err := os.ReadFile(k)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(buf)
		}
	}
	f.Add([]byte(`{"kdf":"scrypt","N":16777216,"r":64,"p":16,"salt":"AAAA","data":"` + string(bytes.Repeat([]byte("A"), 44)) + `"}`))
	f.Add([]byte(`{"kdf":"argon2"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := parseKeyFile(data)
		if err != nil {
			return
		}
		if kf.KDF != "scrypt" || len(kf.Salt) == 0 || len(kf.Data) < overhead {
			t.Fatalf("accepted key file %+v", kf)
		}
		if kf.N <= 0 || kf.R <= 0 || kf.P <= 0 || int64(kf.N)*int64(kf.R)*128 > maxKDFMemory {
			t.Fatalf("accepted scrypt parameters N=%d r=%d p=%d", kf.N, kf.R, kf.P)
		}
		if kf.N*kf.R*kf.P <= 64 { // cheap enough to derive on every input
			if k, err := kf.open(password); err == nil && k == nil {
				t.Fatal("open returned neither key nor error")
			}
		}
	})
}

// rleFrame is a zstd frame without a content size: n copies of b as RLE
// blocks, 4 bytes of input per 128 KiB of output. Concatenated frames are
// the classic decompression bomb.
func rleFrame(n int, b byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, zstdMagic)
	out = append(out, 0x00, (17-10)<<3) // descriptor: no size, no checksum; window 128 KiB
	for {
		size := min(n, 128<<10)
		n -= size
		h := uint32(1)<<1 | uint32(size)<<3 // RLE block
		if n == 0 {
			h |= 1 // last
		}
		out = append(out, byte(h), byte(h>>8), byte(h>>16), b)
		if n == 0 {
			return out
		}
	}
}

// claimFrame is a frame header claiming size bytes of content, with nothing
// after it.
func claimFrame(size uint64) []byte {
	out := binary.LittleEndian.AppendUint32(nil, zstdMagic)
	out = append(out, 0xc0|0x20) // 8-byte content size, single segment
	return binary.LittleEndian.AppendUint64(out, size)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

const fuzzUnpackedLimit = 1 << 20

func FuzzDecodeUnpacked(f *testing.F) {
	// A small limit keeps each input cheap; the code path is the one the
	// repository uses with maxUnpackedSize.
	c := testCodec(f, fuzzUnpackedLimit)
	doc := []byte(`{"packs":[{"id":"00","blobs":[]}]}`)
	f.Add(doc)
	f.Add([]byte(`[1,2]`))
	f.Add(c.enc.EncodeAll(doc, []byte{unpackedZstd}))
	f.Add(c.enc.EncodeAll(nil, []byte{unpackedZstd}))
	f.Add(cat([]byte{unpackedZstd}, rleFrame(fuzzUnpackedLimit, '{')))
	f.Add(cat([]byte{unpackedZstd}, rleFrame(fuzzUnpackedLimit+1, '{')))
	f.Add(cat([]byte{unpackedZstd}, claimFrame(1<<40)))
	f.Add(cat([]byte{unpackedZstd}, rleFrame(fuzzUnpackedLimit, 'a'), rleFrame(fuzzUnpackedLimit, 'b')))
	f.Add([]byte{3, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, plain []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		out, err := c.decodeUnpacked(plain)
		runtime.ReadMemStats(&after)
		if err == nil && len(out) > fuzzUnpackedLimit {
			t.Fatalf("decoded %d bytes, limit %d", len(out), fuzzUnpackedLimit)
		}
		// Output grows by append, so one frame at the limit costs about
		// 4.5 times the limit in total allocations (measured); two frames
		// at the limit cost over 10 times.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 6*fuzzUnpackedLimit+1<<20 {
			t.Fatalf("decoding %d bytes allocated %d bytes (limit %d)", len(plain), alloc, fuzzUnpackedLimit)
		}
	})
}

func TestDecodeUnpackedBombs(t *testing.T) {
	small := testCodec(t, fuzzUnpackedLimit)
	prod, err := newCodec(zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.close()
	doc := []byte(`{"a":1}`)
	for _, tc := range []struct {
		name    string
		c       *codec
		in      []byte
		wantErr bool
	}{
		{"json", small, doc, false},
		{"zstd", small, small.enc.EncodeAll(doc, []byte{unpackedZstd}), false},
		{"one frame at the limit", small, cat([]byte{unpackedZstd}, rleFrame(fuzzUnpackedLimit, 'x')), false},
		{"one frame past the limit", small, cat([]byte{unpackedZstd}, rleFrame(fuzzUnpackedLimit+1, 'x')), true},
		{"two frames each at the limit", small, cat([]byte{unpackedZstd}, rleFrame(fuzzUnpackedLimit, 'x'), rleFrame(fuzzUnpackedLimit, 'y')), true},
		{"two small frames", small, cat([]byte{unpackedZstd}, rleFrame(10, 'x'), rleFrame(10, 'y')), true},
		{"trailing byte", small, cat(small.enc.EncodeAll(doc, []byte{unpackedZstd}), []byte{0}), true},
		{"truncated", small, cat([]byte{unpackedZstd}, rleFrame(fuzzUnpackedLimit, 'x')[:20]), true},
		// The production limit: a header claiming 1 TiB is refused before
		// anything is allocated for it, and so is a frame past the limit.
		{"claims 1 TiB", prod, cat([]byte{unpackedZstd}, claimFrame(1<<40)), true},
		{"claims the limit plus one", prod, cat([]byte{unpackedZstd}, claimFrame(maxUnpackedSize+1)), true},
		{"two frames at the real limit", prod, cat([]byte{unpackedZstd}, rleFrame(maxUnpackedSize, 'x'), rleFrame(maxUnpackedSize, 'y')), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			out, err := tc.c.decodeUnpacked(tc.in)
			runtime.ReadMemStats(&after)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; tc.c == prod && alloc > 1<<20 {
				t.Errorf("allocated %d bytes for a rejected bomb", alloc)
			}
			if err == nil && len(out) > fuzzUnpackedLimit {
				t.Errorf("decoded %d bytes", len(out))
			}
		})
	}
}

// TestZstdFrameLenMatchesEncoder checks the frame walker against frames the
// zstd encoder writes (with and without content size and checksum).
func TestZstdFrameLenMatchesEncoder(t *testing.T) {
	random := make([]byte, 300<<10)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(random) // incompressible: raw blocks
	for _, opts := range [][]zstd.EOption{
		nil,
		{zstd.WithEncoderCRC(false)},
		{zstd.WithEncoderLevel(zstd.SpeedBestCompression)},
		{zstd.WithSingleSegment(true)},
		{zstd.WithZeroFrames(true)},
	} {
		enc, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range [][]byte{nil, {1}, []byte("hello hello hello"), make([]byte, 3<<20), random} {
			z := enc.EncodeAll(in, nil)
			if len(in) == 0 && len(z) == 0 {
				continue // no frame at all without WithZeroFrames
			}
			if n, err := zstdFrameLen(z); err != nil || n != len(z) {
				t.Errorf("%d bytes encoded to %d: frame length %d, %v", len(in), len(z), n, err)
			}
		}
		enc.Close()
	}
}

func TestParseKeyFileRejectsCostlyParameters(t *testing.T) {
	data := `"salt":"AAAA","data":"` + string(bytes.Repeat([]byte("A"), 44)) + `"`
	for _, tc := range []struct {
		params string
		ok     bool
	}{
		{`"N":32768,"r":8,"p":4`, true}, // what restic 0.14 wrote for testdata
		{`"N":1048576,"r":8,"p":1`, true},
		{`"N":2097152,"r":8,"p":1`, false}, // 2 GiB
		{`"N":16777216,"r":64,"p":16`, false},
		{`"N":9223372036854775807,"r":9223372036854775807,"p":1`, false},
		{`"N":0,"r":8,"p":1`, false},
		{`"N":1024,"r":-1,"p":1`, false},
		{`"N":1024,"r":8,"p":0`, false},
	} {
		_, err := parseKeyFile([]byte(`{"kdf":"scrypt",` + tc.params + `,` + data + `}`))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.params, err, tc.ok)
		}
	}
}
