package prune

import (
	"context"
	"fmt"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

func packHandle(id repo.ID) remote.Handle {
	return remote.Handle{Type: remote.PackFile, Name: id.String()}
}

// plan decides what happens to every pack and index file and fills in the
// result's counts. It reads, never writes.
func (p *pruner) plan(ctx context.Context) error {
	now := p.o.Now()
	idx := p.r.Index()
	var missing []string
	for _, f := range p.index {
		for _, ip := range f.Packs {
			idx.AddPack(ip.ID, ip.Blobs)
			pk := p.packs[ip.ID]
			if pk == nil {
				missing = append(missing, ip.ID.Str())
				pk = &pack{id: ip.ID, size: repo.PackSize(ip.Blobs)}
				p.packs[ip.ID] = pk
			}
			if !pk.indexed {
				pk.indexed = true
				p.order = append(p.order, pk)
			}
			have := make(map[repo.BlobHandle]bool, len(pk.blobs))
			for _, b := range pk.blobs {
				have[b.BlobHandle] = true
			}
			for _, b := range ip.Blobs {
				if !have[b.BlobHandle] {
					pk.blobs = append(pk.blobs, b)
				}
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%d packs the index lists are not stored (%s): the repository is damaged or objects were deleted behind escrow's back; prune stops. Run `escrow check`, and look at the bucket's history with `escrow snapshots --as-of` and `escrow doctor`", len(missing), joinShort(missing))
	}
	sort.Slice(p.order, func(i, j int) bool { return p.order[i].id.String() < p.order[j].id.String() })

	// A retained old index file stays, and so must every pack it lists.
	indexUntil := make([]time.Time, len(p.index))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.o.Workers)
	for i, f := range p.index {
		g.Go(func() error {
			var err error
			indexUntil[i], err = retainedUntil(gctx, p.o.Retention, remote.Handle{Type: remote.IndexFile, Name: f.ID.String()}, now)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, f := range p.index {
		until := indexUntil[i]
		if until.IsZero() {
			p.oldIndex = append(p.oldIndex, f.ID)
			continue
		}
		p.res.IndexRetained++
		for _, ip := range f.Packs {
			pk := p.packs[ip.ID]
			pk.pinned = true
			if until.After(pk.until) {
				pk.until = until
			}
		}
	}
	p.res.IndexOld = len(p.oldIndex)

	used, err := markUsed(ctx, p.r, p.snaps, p.o.Workers)
	if err != nil {
		return err
	}
	var lost []string
	for h := range used {
		if !idx.Has(h) {
			lost = append(lost, h.String())
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		return fmt.Errorf("%d blobs the snapshots need are in no index (%s): prune stops rather than delete around damage; run `escrow check`", len(lost), joinShort(lost))
	}
	claim(p.order, used)
	choose(p.order, p.o.MaxUnused, p.o.RepackSmall, repo.DefaultPackSize)

	var orphans []*pack
	for _, pk := range p.packs {
		if !pk.indexed {
			orphans = append(orphans, pk)
		}
	}
	sort.Slice(orphans, func(i, j int) bool { return orphans[i].id.String() < orphans[j].id.String() })
	removing := map[string]bool{}
	if p.prev != nil {
		for _, k := range p.prev.Removing {
			removing[k] = true
		}
	}
	for _, pk := range orphans {
		if now.Sub(pk.modTime) < p.o.Grace && !removing[packKey(pk.id)] {
			pk.action = keepYoung
		} else {
			pk.action = removeOrph
		}
	}

	// Never try to delete a retained version: look before planning to.
	all := append(append([]*pack(nil), p.order...), orphans...)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(p.o.Workers)
	for _, pk := range all {
		if pk.action != remove && pk.action != repack && pk.action != removeOrph {
			continue
		}
		g.Go(func() error {
			until, err := retainedUntil(gctx, p.o.Retention, packHandle(pk.id), now)
			if err != nil {
				return err
			}
			if !until.IsZero() {
				pk.action, pk.until = protected, until
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	for _, pk := range all {
		p.res.Used.N += len(pk.used)
		p.res.Used.Bytes += pk.usedBytes
		action := pk.action
		if action == keep && pk.pinned && len(pk.used) == 0 {
			action = protected // unused, but an index file under retention lists it
		}
		switch action {
		case keep, keepYoung:
			if pk.action == keepYoung {
				p.res.Young.add(pk.size)
			} else {
				p.res.Keep.add(pk.size)
			}
			p.res.After.add(pk.size)
		case remove:
			p.res.Remove.add(pk.size)
		case repack:
			p.res.Repack.add(pk.size)
			for _, b := range pk.used {
				p.res.Repacked.add(int64(b.Length))
			}
		case removeOrph:
			p.res.Orphans.add(pk.size)
		case protected:
			p.res.Protected.add(pk.size)
			p.res.After.add(pk.size)
			if pk.until.After(p.res.ProtectedUntil) {
				p.res.ProtectedUntil = pk.until
			}
		}
	}
	// The repacked blobs come back in new packs (about their size).
	p.res.After.Bytes += p.res.Repacked.Bytes
	return nil
}

// execute carries out the plan in the order the package comment gives.
func (p *pruner) execute(ctx context.Context) error {
	if p.res.Remove.N == 0 && p.res.Repack.N == 0 && p.res.Orphans.N == 0 {
		return p.record(p.cur)
	}
	newPacks, writerIndex, err := p.repack(ctx)
	if err != nil {
		return err
	}
	var keepPacks []repo.IndexPack
	for _, pk := range p.order {
		if pk.action == keep || pk.action == protected {
			keepPacks = append(keepPacks, repo.IndexPack{ID: pk.id, Blobs: pk.blobs})
		}
	}
	keepPacks = append(keepPacks, newPacks...)
	supersedes := append(append([]repo.ID(nil), p.oldIndex...), writerIndex...)
	newIndex, err := p.r.SaveIndexFiles(ctx, keepPacks, supersedes)
	if err != nil {
		return fmt.Errorf("write the new index (nothing was deleted; run prune again): %w", err)
	}
	p.res.IndexNew = len(newIndex)

	// The writer's own index files duplicate the new index; they go too,
	// unless the store already retains them.
	delIndex := append([]repo.ID(nil), p.oldIndex...)
	for _, id := range writerIndex {
		until, err := retainedUntil(ctx, p.o.Retention, remote.Handle{Type: remote.IndexFile, Name: id.String()}, p.o.Now())
		if err != nil {
			return err
		}
		if until.IsZero() {
			delIndex = append(delIndex, id)
		}
	}
	var delPacks []repo.ID
	for _, pk := range p.packs {
		if pk.action == remove || pk.action == repack || pk.action == removeOrph {
			delPacks = append(delPacks, pk.id)
		}
	}

	// Record the listing as it will be once done, before deleting: an
	// interrupted run must not find its own deletions suspicious.
	after := &listing{Time: p.o.Now(), Snapshots: p.cur.Snapshots}
	gone := map[string]bool{}
	for _, id := range delIndex {
		gone[id.String()] = true
	}
	for _, s := range append(p.cur.Index, idStrings(writerIndex)...) {
		if !gone[s] {
			after.Index = append(after.Index, s)
		}
	}
	after.Index = append(after.Index, idStrings(newIndex)...)
	for _, id := range delPacks {
		gone[packKey(id)] = true
		after.Removing = append(after.Removing, packKey(id))
	}
	for _, s := range p.cur.Packs {
		if !gone[s] {
			after.Packs = append(after.Packs, s)
		}
	}
	for _, np := range newPacks {
		after.Packs = append(after.Packs, packKey(np.ID))
	}
	if err := p.record(after); err != nil {
		return err
	}

	if err := p.removeAll(ctx, remote.IndexFile, delIndex); err != nil {
		return fmt.Errorf("delete old index files (the new index is in place; run prune again to finish): %w", err)
	}
	if err := p.removeAll(ctx, remote.PackFile, delPacks); err != nil {
		return fmt.Errorf("delete unused packs (the index no longer lists them; run prune again to finish): %w", err)
	}
	return nil
}

func (p *pruner) record(l *listing) error {
	if p.o.StateDir == "" {
		return nil
	}
	return l.save(StatePath(p.o.StateDir, p.r.Config().ID))
}

// repack copies the used blobs of the packs to repack into new packs and
// returns those packs and the index files the writer stored for them.
func (p *pruner) repack(ctx context.Context) ([]repo.IndexPack, []repo.ID, error) {
	var todo []*pack
	for _, pk := range p.order {
		if pk.action == repack {
			todo = append(todo, pk)
		}
	}
	if len(todo) == 0 {
		return nil, nil, nil
	}
	w := p.r.NewRepackWriter(ctx)
	copyErr := func() error {
		var buf []byte
		for _, pk := range todo {
			data, err := remote.LoadAll(ctx, p.r.Backend(), packHandle(pk.id))
			if err != nil {
				return fmt.Errorf("repack: read pack %s: %w", pk.id.Str(), err)
			}
			if repo.Hash(data) != pk.id {
				return fmt.Errorf("repack: pack %s: %w: its content does not match its name (run `escrow check --read-data`; nothing was deleted)", pk.id.Str(), repo.ErrCorrupt)
			}
			for _, b := range pk.used {
				end := int64(b.Offset) + int64(b.Length)
				if end > int64(len(data)) {
					return fmt.Errorf("repack: %s lies past the end of pack %s: %w (run `escrow check --read-data`)", b.BlobHandle, pk.id.Str(), repo.ErrCorrupt)
				}
				plain, err := p.r.OpenBlob(b, data[b.Offset:end], buf)
				if err != nil {
					return fmt.Errorf("repack: %w (run `escrow check --read-data`; nothing was deleted)", err)
				}
				if _, _, err := w.SaveBlob(ctx, b.Type, plain); err != nil {
					return fmt.Errorf("repack: store %s: %w", b.BlobHandle, err)
				}
				buf = plain[:0]
			}
		}
		return nil
	}()
	if err := w.Close(ctx); err != nil && copyErr == nil {
		copyErr = fmt.Errorf("repack: %w", err)
	}
	if copyErr != nil {
		return nil, nil, copyErr
	}
	ids := w.IndexFiles()
	var out []repo.IndexPack
	for _, id := range ids {
		f, err := p.r.LoadIndexFile(ctx, id)
		if err != nil {
			return nil, nil, fmt.Errorf("repack: read back index file %s: %w", id.Str(), err)
		}
		out = append(out, f.Packs...)
	}
	return out, ids, nil
}

// removeAll deletes objects in parallel; one already gone is fine (a
// re-run after an interruption).
func (p *pruner) removeAll(ctx context.Context, t remote.FileType, ids []repo.ID) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.o.Workers)
	for _, id := range ids {
		g.Go(func() error {
			err := p.r.Backend().Remove(gctx, remote.Handle{Type: t, Name: id.String()})
			if err != nil && !remote.IsNotFound(err) {
				return err
			}
			return nil
		})
	}
	return g.Wait()
}

func idStrings(ids []repo.ID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

func joinShort(list []string) string {
	if len(list) > 5 {
		return fmt.Sprint(list[:5], " …")
	}
	return fmt.Sprint(list)
}
