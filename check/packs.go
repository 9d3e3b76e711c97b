package check

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// packState is what the index and the storage listing say about one pack.
type packState struct {
	want, got int64
	indexed   bool
	present   bool
}

// packBlobs groups the master index by pack, each pack's blobs by offset.
// The index keeps one location per blob, so a pack whose blobs are all
// stored earlier elsewhere has no entries here.
func packBlobs(idx *repo.Index) map[repo.ID][]repo.PackedBlob {
	out := map[repo.ID][]repo.PackedBlob{}
	idx.Each(func(pb repo.PackedBlob) { out[pb.PackID] = append(out[pb.PackID], pb) })
	for _, blobs := range out {
		sort.Slice(blobs, func(i, j int) bool { return blobs[i].Offset < blobs[j].Offset })
	}
	return out
}

// listPacks joins the index's packs with the stored ones and records the
// orphans, stored packs no index lists.
func (c *checker) listPacks(ctx context.Context) (map[repo.ID]*packState, error) {
	packs := map[repo.ID]*packState{}
	for id, size := range c.r.Index().Packs() {
		packs[id] = &packState{want: size, indexed: true}
	}
	c.rep.Packs = len(packs)
	err := c.r.Backend().List(ctx, remote.PackFile, func(fi remote.FileInfo) error {
		id, err := repo.ParseID(fi.Name)
		if err != nil {
			c.log.Warn("ignoring a file in data/ whose name is not a pack ID", "name", fi.Name)
			return nil
		}
		st := packs[id]
		if st == nil {
			st = &packState{}
			packs[id] = st
		}
		st.present, st.got = true, fi.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	if c.indexIncomplete {
		// Packs listed by the index files that failed to load would show
		// here, and calling them harmless could get them deleted.
		c.progress(StagePacks, len(packs), len(packs))
		return packs, nil
	}
	for _, id := range sortedIDs(packs) {
		if !packs[id].indexed {
			c.rep.Orphans = append(c.rep.Orphans, id)
			c.log.Info("pack not in any index (left by an interrupted or running backup; prune removes it)", "pack", id.Str())
		}
	}
	c.progress(StagePacks, len(packs), len(packs))
	return packs, nil
}

func sortedIDs[V any](m map[repo.ID]V) []repo.ID {
	ids := make([]repo.ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	return ids
}

// selectPacks picks the indexed, stored packs to read.
func (c *checker) selectPacks(packs map[repo.ID]*packState) []repo.ID {
	var ids []repo.ID
	for _, id := range sortedIDs(packs) {
		if st := packs[id]; st.indexed && st.present {
			ids = append(ids, id)
		}
	}
	return selectSubset(ids, c.opts)
}

// selectSubset applies the subset options to ids. A part is chosen from the
// ID itself, not its position, so parts stay disjoint while packs come and go.
func selectSubset(ids []repo.ID, o Options) []repo.ID {
	switch {
	case o.SubsetParts > 0:
		var out []repo.ID
		for _, id := range ids {
			if binary.BigEndian.Uint64(id[:8])%uint64(o.SubsetParts) == uint64(o.SubsetPart-1) {
				out = append(out, id)
			}
		}
		return out
	case o.SubsetFraction > 0 && len(ids) > 0:
		n := max(1, int(math.Round(o.SubsetFraction*float64(len(ids)))))
		out := make([]repo.ID, 0, n)
		for _, i := range rand.Perm(len(ids))[:n] {
			out = append(out, ids[i])
		}
		return out
	}
	return ids
}

// readResult is what reading one whole pack found.
type readResult struct {
	err      error // the pack could not be read; nothing else is set
	hashOK   bool
	hdrErr   error    // the header could not be decoded
	mismatch []string // index entries the header disagrees with
	damaged  []damagedBlob
}

type damagedBlob struct {
	pb  repo.PackedBlob
	err error
}

// readData reads the selected packs in parallel.
func (c *checker) readData(ctx context.Context, ids []repo.ID, packs map[repo.ID]*packState, byPack map[repo.ID][]repo.PackedBlob) (map[repo.ID]*readResult, error) {
	out := make(map[repo.ID]*readResult, len(ids))
	var mu sync.Mutex
	rp := ReadProgress{PacksTotal: len(ids)}
	for _, id := range ids {
		rp.BytesTotal += uint64(packs[id].got)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Workers)
	for _, id := range ids {
		g.Go(func() error {
			res := c.readPack(gctx, id, byPack[id])
			if err := gctx.Err(); err != nil {
				return err
			}
			mu.Lock()
			out[id] = res
			n := len(out)
			rp.PacksDone = n
			rp.BytesDone += uint64(packs[id].got)
			// Reported under mu, so the counts never go back.
			c.readProgress(rp)
			mu.Unlock()
			c.progress(StageReadData, n, len(ids))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	c.rep.PacksRead = len(out)
	return out, nil
}

// readProgress hands p to the caller; the lock keeps calls from overlapping,
// as Options promises.
func (c *checker) readProgress(p ReadProgress) {
	if c.opts.ReadProgress == nil {
		return
	}
	c.progressMu.Lock()
	defer c.progressMu.Unlock()
	c.opts.ReadProgress(p)
}

// readPack verifies one pack: its hash, its header against the index, and
// every indexed blob at the place the index gives. Blobs are checked even
// when the pack as a whole is damaged, so that only the files needing the
// blobs that really are lost are reported as affected.
func (c *checker) readPack(ctx context.Context, id repo.ID, blobs []repo.PackedBlob) *readResult {
	h := remote.Handle{Type: remote.PackFile, Name: id.String()}
	data, err := remote.LoadAll(ctx, c.r.Backend(), h)
	if err != nil {
		return &readResult{err: err}
	}
	// A pack damaged on the way here (a flaky network or store) reads
	// sound the second time, damage in storage does not: read it once
	// more before calling it damaged, so that a flaky read is never
	// reported as damage. The second read is the one judged.
	if repo.Hash(data) != id {
		again, err := remote.LoadAll(ctx, c.r.Backend(), h)
		switch {
		case err == nil && repo.Hash(again) == id:
			c.log.Warn("a pack read for --read-data did not match its name once and was sound when read again (a flaky network or store); not counted as damage",
				"pack", id.Str())
			data = again
		case err == nil:
			data = again
		default:
			c.log.Warn("reading a pack again after it did not match its name failed; judging the first read", "pack", id.Str(), "err", err)
		}
	}
	res := &readResult{hashOK: repo.Hash(data) == id}
	hdr, err := c.r.Key().DecodePack(data, id)
	if err != nil {
		res.hdrErr = err
	} else {
		res.mismatch = compareHeader(hdr, blobs)
	}
	var buf []byte
	for _, pb := range blobs {
		end := int64(pb.Offset) + int64(pb.Length)
		if end > int64(len(data)) {
			res.damaged = append(res.damaged, damagedBlob{pb, fmt.Errorf("%s: %w: ends at byte %d, past the end of the pack", pb.BlobHandle, repo.ErrCorrupt, end)})
			continue
		}
		plain, err := c.r.OpenBlob(pb, data[pb.Offset:end], buf)
		if err != nil {
			res.damaged = append(res.damaged, damagedBlob{pb, err})
			continue
		}
		buf = plain
	}
	return res
}

// compareHeader lists the index entries that the pack's header does not
// hold exactly. Extra header entries are fine: the index keeps only the
// first copy of a blob stored twice.
func compareHeader(hdr, indexed []repo.PackedBlob) []string {
	byHandle := make(map[repo.BlobHandle]repo.PackedBlob, len(hdr))
	for _, b := range hdr {
		byHandle[b.BlobHandle] = b
	}
	var out []string
	for _, want := range indexed {
		got, ok := byHandle[want.BlobHandle]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s is not in the header", want.BlobHandle))
		case got.Offset != want.Offset || got.Length != want.Length || got.UncompressedLength != want.UncompressedLength:
			out = append(out, fmt.Sprintf("%s: header has offset %d, length %d, uncompressed %d; index has %d, %d, %d",
				want.BlobHandle, got.Offset, got.Length, got.UncompressedLength, want.Offset, want.Length, want.UncompressedLength))
		}
	}
	return out
}

const (
	fixLostPack = "restore the affected files from a snapshot not listed here, or re-run backup while they still exist; " +
		"escrow will store the data again once the pack is removed from the index by prune"
	fixIndexOnly   = "no data is lost (every blob verifies where the index says it is), but the index must be rebuilt from the packs"
	fixNothingLost = "no file is affected yet: every blob still verifies where the index says it is; " +
		"have prune rewrite the pack before more of it is lost"
)

// packFindings turns listing and read results into problems, one per
// damaged pack, in pack order. The blobs of a pack that was not read are
// all presumed lost; of a pack that was read, only those that failed.
func (c *checker) packFindings(packs map[repo.ID]*packState, reads map[repo.ID]*readResult, byPack map[repo.ID][]repo.PackedBlob) {
	for _, id := range sortedIDs(packs) {
		st, rd, blobs := packs[id], reads[id], byPack[id]
		if !st.indexed {
			continue
		}
		p := Problem{Pack: id, Fix: fixLostPack}
		lost := handles(blobs)
		if rd != nil && rd.err == nil {
			lost = damagedHandles(rd.damaged)
		}
		switch {
		case !st.present:
			p.Kind = KindMissingPack
			p.Err = fmt.Errorf("pack %s: %w: the index lists it with %s, but it is not in storage", id.Str(), repo.ErrMissing, plural(len(blobs), "blob"))
		case st.got != st.want:
			p.Kind = KindPackSize
			how := "truncated"
			if st.got > st.want {
				how = "extended"
			}
			p.Err = fmt.Errorf("pack %s: %w: %d bytes in storage, the index says %d (%s in storage)%s", id.Str(), repo.ErrCorrupt, st.got, st.want, how, readSummary(rd, len(blobs)))
			if rd != nil && rd.err == nil && rd.hashOK {
				p.Fix = fixIndexOnly
			}
		case rd == nil:
			continue
		case rd.err != nil:
			c.add(finding{Problem: Problem{Kind: KindPackRead, Pack: id,
				Err: fmt.Errorf("pack %s could not be read: %w", id.Str(), rd.err),
				Fix: "check that the storage is reachable and run check again"}})
			continue
		case !rd.hashOK:
			p.Kind = KindPackHash
			p.Err = fmt.Errorf("pack %s: %w: content does not match its name (damaged in storage)%s", id.Str(), repo.ErrCorrupt, readSummary(rd, len(blobs)))
		default:
			c.intactPackFindings(id, rd)
			continue
		}
		if rd != nil && rd.err == nil && !rd.hashOK && len(lost) == 0 {
			p.Fix = fixNothingLost
		}
		c.add(finding{Problem: p, blobs: lost})
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// intactPackFindings reports a pack that hashes to its name but does not
// agree with the index: it was stored like that, or the index is wrong.
func (c *checker) intactPackFindings(id repo.ID, rd *readResult) {
	// When the header disagrees with the index, a blob failing at the
	// index's place may be intact at the header's: the index is to blame.
	fix := fixIndexOnly
	if len(rd.damaged) > 0 {
		fix = "the index must be rebuilt from the packs; until then the affected files cannot be restored"
	}
	switch {
	case rd.hdrErr != nil:
		c.add(finding{Problem: Problem{Kind: KindPackHeader, Pack: id,
			Err: fmt.Errorf("pack %s: %w: intact but its header cannot be decoded: %v", id.Str(), repo.ErrCorrupt, rd.hdrErr),
			Fix: fix}})
	case len(rd.mismatch) > 0:
		c.add(finding{Problem: Problem{Kind: KindPackHeader, Pack: id,
			Err: fmt.Errorf("pack %s: %w: its header disagrees with the index on %d blobs: %s", id.Str(), repo.ErrCorrupt, len(rd.mismatch), firstFew(rd.mismatch)),
			Fix: fix}})
	}
	for _, d := range rd.damaged {
		c.add(finding{Problem: Problem{Kind: KindBlob, Pack: id, Blob: d.pb.BlobHandle,
			Err: fmt.Errorf("%w (the pack is intact: the blob was stored damaged or the index points at the wrong bytes)", d.err),
			Fix: fixLostPack}, blobs: []repo.BlobHandle{d.pb.BlobHandle}})
	}
}

// readSummary tells what reading a damaged pack showed, for its message.
func readSummary(rd *readResult, n int) string {
	switch {
	case rd == nil:
		return "; not read, so all its blobs are presumed lost"
	case rd.err != nil:
		return fmt.Sprintf("; reading it failed (%v), so all its blobs are presumed lost", rd.err)
	case rd.hashOK:
		return "; its content matches its name, so the index is what is wrong"
	}
	var b strings.Builder
	if rd.hdrErr != nil {
		fmt.Fprintf(&b, "; its header is unreadable (%v)", rd.hdrErr)
	} else if len(rd.mismatch) > 0 {
		fmt.Fprintf(&b, "; its header disagrees with the index (%s)", firstFew(rd.mismatch))
	}
	if len(rd.damaged) == 0 {
		fmt.Fprintf(&b, "; all %s it holds still verify", plural(n, "indexed blob"))
		return b.String()
	}
	errs := make([]string, len(rd.damaged))
	for i, d := range rd.damaged {
		errs[i] = d.err.Error()
	}
	fmt.Fprintf(&b, "; %d of %d blobs fail to verify: %s", len(rd.damaged), n, firstFew(errs))
	return b.String()
}

func firstFew(s []string) string {
	const few = 3
	if len(s) <= few {
		return strings.Join(s, "; ")
	}
	return strings.Join(s[:few], "; ") + fmt.Sprintf("; and %d more", len(s)-few)
}

func handles(blobs []repo.PackedBlob) []repo.BlobHandle {
	out := make([]repo.BlobHandle, len(blobs))
	for i, b := range blobs {
		out[i] = b.BlobHandle
	}
	return out
}

func damagedHandles(d []damagedBlob) []repo.BlobHandle {
	out := make([]repo.BlobHandle, len(d))
	for i, b := range d {
		out[i] = b.pb.BlobHandle
	}
	return out
}
