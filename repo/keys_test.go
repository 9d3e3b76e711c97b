package repo_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// keyStore is a place for a repository that both escrow and restic reach.
type keyStore struct {
	open   func(t *testing.T) remote.Backend
	create func(t *testing.T) remote.Backend
	env    []string // RESTIC_REPOSITORY and credentials for restic
}

func localKeyStore(t *testing.T) keyStore {
	dir := filepath.Join(t.TempDir(), "repo")
	return keyStore{
		create: func(t *testing.T) remote.Backend {
			be, err := local.Create(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			return be
		},
		open: func(t *testing.T) remote.Backend {
			be, err := local.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return be
		},
		env: []string{"RESTIC_REPOSITORY=" + dir},
	}
}

func minioKeyStore(t *testing.T) keyStore {
	srv := testenv.MinIO(t)
	url := srv.URL(srv.NewBucket(t), "keys")
	cfg, err := s3.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeyID, cfg.Secret = srv.AccessKey, srv.SecretKey
	connect := func(t *testing.T, create bool) remote.Backend {
		var be *s3.Backend
		var err error
		if create {
			be, err = s3.Create(context.Background(), cfg)
		} else {
			be, err = s3.Open(context.Background(), cfg)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		return be
	}
	return keyStore{
		create: func(t *testing.T) remote.Backend { return connect(t, true) },
		open:   func(t *testing.T) remote.Backend { return connect(t, false) },
		env:    append([]string{"RESTIC_REPOSITORY=" + url}, srv.Env()...),
	}
}

func (s keyStore) openRepo(t *testing.T, password string) (*repo.Repository, error) {
	t.Helper()
	r, err := repo.Open(context.Background(), s.open(t), password, fastKDF)
	if err == nil {
		t.Cleanup(r.Close)
	}
	return r, err
}

// restic runs the real restic with password against the store.
func (s keyStore) restic(t *testing.T, password string, args ...string) (string, error) {
	t.Helper()
	bin := testenv.RequireBinary(t, "restic")
	pw := filepath.Join(t.TempDir(), "restic-password")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--no-cache"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RESTIC_PASSWORD_FILE=" + pw}, s.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// resticOpens reports whether restic opens the repository with password.
func (s keyStore) resticOpens(t *testing.T, password string) bool {
	t.Helper()
	out, err := s.restic(t, password, "cat", "config")
	if err != nil && !strings.Contains(out, "wrong password") {
		t.Fatalf("restic cat config: %v\n%s", err, out)
	}
	return err == nil
}

type resticKey struct {
	Current  bool   `json:"current"`
	ID       string `json:"id"`
	UserName string `json:"userName"`
	HostName string `json:"hostName"`
}

// resticKeys is restic's key list, opened with password.
func (s keyStore) resticKeys(t *testing.T, password string) []resticKey {
	t.Helper()
	out, err := s.restic(t, password, "key", "list", "--json")
	if err != nil {
		t.Fatalf("restic key list: %v\n%s", err, out)
	}
	var keys []resticKey
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("restic key list: %v\n%s", err, out)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ID < keys[j].ID })
	return keys
}

// sameKeys checks that escrow's and restic's key lists agree, IDs, names
// and which key is in use.
func sameKeys(t *testing.T, ours []repo.KeyInfo, theirs []resticKey) {
	t.Helper()
	if len(ours) != len(theirs) {
		t.Fatalf("escrow lists %d keys, restic %d: %+v", len(ours), len(theirs), theirs)
	}
	sort.Slice(ours, func(i, j int) bool { return ours[i].ID.String() < ours[j].ID.String() })
	for i := range ours {
		o, r := ours[i], theirs[i]
		if !strings.HasPrefix(o.ID.String(), r.ID) || o.Username != r.UserName || o.Hostname != r.HostName || o.Current != r.Current {
			t.Errorf("key %d: escrow %s %s@%s current=%v, restic %s %s@%s current=%v",
				i, o.ID.Str(), o.Username, o.Hostname, o.Current, r.ID, r.UserName, r.HostName, r.Current)
		}
	}
}

func keyStores(t *testing.T) map[string]func(*testing.T) keyStore {
	return map[string]func(*testing.T) keyStore{"local": localKeyStore, "minio": minioKeyStore}
}

func TestKeyManagementWithRestic(t *testing.T) {
	for name, mk := range keyStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := mk(t)
			r, err := repo.Init(ctx, s.create(t), "first", fastKDF)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			first := r.KeyID()

			second, err := r.AddKey(ctx, "second", repo.KeyOptions{Username: "owner", Hostname: "laptop"})
			if err != nil {
				t.Fatal(err)
			}
			keys, err := r.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 2 || keys[0].ID != first || !keys[0].Current || keys[1].ID != second || keys[1].Current ||
				keys[1].Username != "owner" || keys[1].Hostname != "laptop" || keys[1].KDF != fastKDF.KDF {
				t.Fatalf("keys after add: %+v", keys)
			}
			sameKeys(t, keys, s.resticKeys(t, "first"))
			if !s.resticOpens(t, "second") || !s.resticOpens(t, "first") || s.resticOpens(t, "third") {
				t.Fatal("restic does not open the repository with exactly the two passwords")
			}
			if id, err := r.FindKey(ctx, second.String()[:6]); err != nil || id != second {
				t.Fatalf("FindKey(prefix) = %v, %v", id, err)
			}
			if _, err := r.FindKey(ctx, "zz"); !remote.IsNotFound(err) {
				t.Fatalf("FindKey(no such key): %v", err)
			}

			// The key in use is refused; the other goes.
			if err := r.RemoveKey(ctx, first); !errors.Is(err, repo.ErrKeyInUse) {
				t.Fatalf("removing the key in use: %v", err)
			}
			if err := r.RemoveKey(ctx, second); err != nil {
				t.Fatal(err)
			}
			if s.resticOpens(t, "second") {
				t.Fatal("restic still opens with a removed key's password")
			}
			if _, err := s.openRepo(t, "second"); !errors.Is(err, repo.ErrWrongPassword) {
				t.Fatalf("escrow opens with a removed key's password: %v", err)
			}
			if err := r.RemoveKey(ctx, second); !remote.IsNotFound(err) {
				t.Fatalf("removing a removed key: %v", err)
			}

			// A key restic adds opens the repository in escrow.
			pw := filepath.Join(t.TempDir(), "new")
			if err := os.WriteFile(pw, []byte("restic's\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := s.restic(t, "first", "key", "add", "--new-password-file", pw, "--user", "reseller", "--host", "ops"); err != nil {
				t.Fatalf("restic key add: %v\n%s", err, out)
			}
			r2, err := s.openRepo(t, "restic's")
			if err != nil {
				t.Fatalf("escrow does not open with restic's new key: %v", err)
			}
			if r2.Config().ID != r.Config().ID {
				t.Fatal("another repository")
			}

			// Changing the password: the new one opens, the old one no longer.
			third, err := r.ChangePassword(ctx, "third", repo.KeyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.KeyID() != third {
				t.Fatalf("in use after passwd: %s, want %s", r.KeyID().Str(), third.Str())
			}
			if s.resticOpens(t, "first") || !s.resticOpens(t, "third") || !s.resticOpens(t, "restic's") {
				t.Fatal("after passwd restic should open with third and restic's, not first")
			}
			keys, err = r.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sameKeys(t, keys, s.resticKeys(t, "third"))
		})
	}
}

// failRemove is a store that refuses deletes, as the backing-up host's
// credentials do, or as a passwd interrupted after its first step leaves it.
type failRemove struct{ remote.Backend }

func (failRemove) Remove(context.Context, remote.Handle) error {
	return errors.New("access denied: s3:DeleteObject")
}

func TestChangePasswordInterrupted(t *testing.T) {
	ctx := context.Background()
	s := localKeyStore(t)
	r, err := repo.Init(ctx, s.create(t), "old", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err = repo.Open(ctx, failRemove{s.open(t)}, "old", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	old := r.KeyID()
	id, err := r.ChangePassword(ctx, "new", repo.KeyOptions{})
	if !errors.Is(err, repo.ErrOldKeyKept) || id.IsNull() || !strings.Contains(err.Error(), old.Str()) {
		t.Fatalf("passwd without delete rights: id %v, err %v", id, err)
	}
	for _, pw := range []string{"old", "new"} {
		if _, err := s.openRepo(t, pw); err != nil {
			t.Errorf("escrow with %q after an interrupted passwd: %v", pw, err)
		}
		if !s.resticOpens(t, pw) {
			t.Errorf("restic does not open with %q after an interrupted passwd", pw)
		}
	}
}

func TestRemoveKeyRefusals(t *testing.T) {
	ctx := context.Background()
	r, dir := newRepo(t, fastKDF)
	only := r.KeyID()
	if err := r.RemoveKey(ctx, only); !errors.Is(err, repo.ErrLastKey) {
		t.Fatalf("removing the only key: %v", err)
	}
	// A damaged key file is no key: the working one is still the last.
	junk := []byte(`{"kdf":"scrypt","N":0}`)
	if err := os.WriteFile(filepath.Join(dir, "keys", repo.Hash(junk).String()), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := r.Keys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys: %+v %v", keys, err)
	}
	for _, k := range keys {
		if (k.ID == only) == (k.Problem != "") {
			t.Errorf("key %s: problem %q", k.ID.Str(), k.Problem)
		}
	}
	if err := r.RemoveKey(ctx, only); !errors.Is(err, repo.ErrLastKey) {
		t.Fatalf("removing the only working key: %v", err)
	}
	// The damaged one may go.
	if err := r.RemoveKey(ctx, repo.Hash(junk)); err != nil {
		t.Fatal(err)
	}
	if _, err := openRepo(t, dir, "secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddKey(ctx, "", repo.KeyOptions{}); err == nil {
		t.Fatal("an empty password was accepted")
	}
}
