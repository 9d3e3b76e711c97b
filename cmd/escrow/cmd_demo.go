package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

//go:embed demosite
var demoSite embed.FS

func newDemoCommand(g *globalOptions) *cobra.Command {
	var dir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Protect a sample site into a local repository, wipe it, restore it and verify it",
		Long: `Run escrow's main job end to end on an embedded sample site, with no cloud
account: create a repository in a local directory, back up the site and its
database dump, change a file and back up again, delete the site as a hostile
host would, restore it, and verify every byte. Each step is the command a
site owner would type.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), g, dir, keep)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "work directory (default: a new temporary directory)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the work directory afterwards")
	return cmd
}

func runDemo(ctx context.Context, g *globalOptions, dir string, keep bool) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "escrow-demo-")
		if err != nil {
			return err
		}
		dir = d
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	site := filepath.Join(dir, "site")
	repoDir := filepath.Join(dir, "repo")
	pwFile := filepath.Join(dir, "password")
	if err := writeDemoSite(site); err != nil {
		return fmt.Errorf("write sample site: %w", err)
	}
	if err := writeSecret(pwFile); err != nil {
		return err
	}
	vars := map[string]string{"ESCROW_REPOSITORY": repoDir, "ESCROW_PASSWORD_FILE": pwFile}
	e := env{stdin: strings.NewReader(""), stdout: g.env.stdout, stderr: g.env.stderr,
		getenv: func(k string) string {
			if v, ok := vars[k]; ok {
				return v
			}
			return g.env.getenv(k)
		}}
	step := func(stdin io.Reader, args ...string) error {
		fmt.Fprintf(g.env.stdout, "\n$ escrow %s\n", strings.Join(args, " "))
		se := e
		if stdin != nil {
			se.stdin = stdin
		}
		if code := run(ctx, args, se); code != 0 {
			return fmt.Errorf("step `escrow %s` failed with exit code %d", strings.Join(args, " "), code)
		}
		return nil
	}
	fmt.Fprintf(g.env.stdout, "escrow demo in %s\nrepository: %s (password in %s)\n", dir, repoDir, pwFile)
	before, err := treeDigest(site)
	if err != nil {
		return err
	}
	dump, err := demoSite.ReadFile("demosite/shop.sql")
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { return step(nil, "init") },
		func() error { return step(nil, "backup", site, "--tag", "site") },
		func() error {
			return step(bytes.NewReader(dump), "backup", "--stdin", "--stdin-filename", "databases/shop.sql", "--tag", "db")
		},
		func() error {
			f, err := os.OpenFile(filepath.Join(site, "index.php"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteString("// edited by the site owner\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			before, err = treeDigest(site)
			if err != nil {
				return err
			}
			return step(nil, "backup", site, "--tag", "site")
		},
		func() error { return step(nil, "snapshots") },
		func() error {
			fmt.Fprintf(g.env.stdout, "\n# the host deletes the site: rm -rf %s\n", site)
			return os.RemoveAll(site)
		},
		func() error {
			return step(nil, "restore", "latest", "--tag", "site", "--target", "/", "--include", site, "--verify")
		},
		func() error {
			after, err := treeDigest(site)
			if err != nil {
				return err
			}
			if diff := compareDigests(before, after); diff != "" {
				return fmt.Errorf("restored site differs from the original: %s", diff)
			}
			fmt.Fprintf(g.env.stdout, "# compared %d restored files with the originals: identical\n", len(after))
			return nil
		},
		func() error {
			var out bytes.Buffer
			fmt.Fprintf(g.env.stdout, "\n$ escrow dump latest databases/shop.sql --tag db\n")
			se := e
			se.stdout = &out
			if code := run(ctx, []string{"dump", "latest", "databases/shop.sql", "--tag", "db"}, se); code != 0 {
				return fmt.Errorf("dump failed with exit code %d", code)
			}
			if !bytes.Equal(out.Bytes(), dump) {
				return errors.New("the dumped database differs from the one backed up")
			}
			fmt.Fprintf(g.env.stdout, "# database dump: %d bytes, identical\n", out.Len())
			return nil
		},
		func() error { return step(nil, "check", "--read-data") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	fmt.Fprintf(g.env.stdout, "\nescrow demo: OK — the site and its database came back byte for byte.\n")
	return nil
}

// writeDemoSite copies the embedded site and adds a generated 3 MB upload,
// large enough to be split into several chunks.
func writeDemoSite(dst string) error {
	err := fs.WalkDir(demoSite, "demosite", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, "demosite"), "/")
		if rel == "shop.sql" {
			return nil // the database is backed up as a dump, not a file of the site
		}
		out := filepath.Join(dst, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		data, err := demoSite.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, data, 0o644)
	})
	if err != nil {
		return err
	}
	photo := make([]byte, 3<<20)
	rnd := mrand.NewChaCha8([32]byte{'e', 's', 'c', 'r', 'o', 'w'})
	_, _ = rnd.Read(photo)
	return os.WriteFile(filepath.Join(dst, "wp-content", "uploads", "2026", "11", "product.jpg"), photo, 0o644)
}

func writeSecret(name string) error {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return os.WriteFile(name, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}

// treeDigest maps each regular file and symlink below root to a digest of
// its content and mode.
func treeDigest(root string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		rel, _ := filepath.Rel(root, p)
		out[rel] = fmt.Sprintf("%x %v %d", sum[:8], info.Mode(), info.ModTime().UnixNano())
		return nil
	})
	return out, err
}

func compareDigests(a, b map[string]string) string {
	for k, v := range a {
		if b[k] != v {
			return fmt.Sprintf("%s: %q vs %q", k, v, b[k])
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d files before, %d after", len(a), len(b))
	}
	return ""
}
