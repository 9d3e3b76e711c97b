package setup

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/escrow-backup/escrow/kit"
	"github.com/escrow-backup/escrow/repo"
)

// Paths are where setup writes. Tests put them in a temporary folder.
type Paths struct {
	// ConfigFile is the agent's configuration (/etc/escrow/escrow.yaml).
	ConfigFile string
	// PasswordFile holds the repository password; empty: "password" next
	// to ConfigFile.
	PasswordFile string
}

// Dir is the folder of the configuration and the secrets.
func (p Paths) Dir() string { return filepath.Dir(p.ConfigFile) }

// Password is the password file's path.
func (p Paths) Password() string {
	if p.PasswordFile != "" {
		return p.PasswordFile
	}
	return filepath.Join(p.Dir(), "password")
}

// S3Secret is the S3 secret key's file.
func (p Paths) S3Secret() string { return filepath.Join(p.Dir(), "s3.secret") }

// DBPassword is the password file of the database entry name.
func (p Paths) DBPassword(name string) string { return filepath.Join(p.Dir(), "db-"+name+".pass") }

// MakeDir creates the configuration folder readable by root only, or makes
// an existing one so: it holds secrets.
func (p Paths) MakeDir() error {
	dir := p.Dir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the configuration folder %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("make the configuration folder %s private (chmod 700): %w", dir, err)
	}
	return nil
}

// GeneratePassword returns a new random repository password: 32 bytes, so
// guessing it is out of the question even without scrypt.
func GeneratePassword() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ErrPasswordDiffers means the answers bring a password other than the one
// in the existing password file.
var ErrPasswordDiffers = errors.New("the password given differs from the one in the password file")

// EnsurePassword returns the repository password: the password file's when
// it exists (the key to an existing repository is never replaced), else
// given, else a new one; a new password is written to the file (0600)
// before anything uses it, so it cannot be lost. created reports a new file.
func EnsurePassword(file, given string) (password string, created bool, err error) {
	_, err = os.Stat(file)
	switch {
	case err == nil:
		// Read as the agent and the command line read it.
		pw, err := repo.ReadPasswordFile(file)
		if err != nil {
			return "", false, fmt.Errorf("%w (or remove the file to have a new password generated)", err)
		}
		if given != "" && given != pw {
			return "", false, fmt.Errorf("%w (%s): remove the password from the answers to keep the existing one", ErrPasswordDiffers, file)
		}
		return pw, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("read the password file: %w", err)
	}
	pw := given
	if pw != "" {
		if err := repo.CheckNewPassword(pw); err != nil {
			return "", false, fmt.Errorf("the password in the answers: %w", err)
		}
	}
	if pw == "" {
		if pw, err = GeneratePassword(); err != nil {
			return "", false, err
		}
	}
	if err := kit.WriteFile(file, []byte(pw+"\n"), false); err != nil {
		return "", false, fmt.Errorf("write the password file: %w", err)
	}
	return pw, true, nil
}

// WriteSecret writes a secret file (0600), replacing it atomically.
func WriteSecret(file, secret string) error {
	if err := kit.WriteFile(file, []byte(secret+"\n"), true); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// fileConfig is the part of the agent's configuration that setup owns.
// Other fields of an existing file (schedule, limits, log, comments) are
// kept as they are.
type fileConfig struct {
	Repository   string       `yaml:"repository"`
	PasswordFile string       `yaml:"password_file"`
	Host         string       `yaml:"host,omitempty"`
	S3           *fileS3      `yaml:"s3,omitempty"`
	Sources      []fileSource `yaml:"sources,omitempty"`
	Databases    []fileDB     `yaml:"databases,omitempty"`
	StateDir     string       `yaml:"state_dir,omitempty"`
}

type fileS3 struct {
	AccessKeyID         string `yaml:"access_key_id,omitempty"`
	SecretAccessKeyFile string `yaml:"secret_access_key_file,omitempty"`
	Region              string `yaml:"region,omitempty"`
	CAFile              string `yaml:"ca_file,omitempty"`
}

type fileSource struct {
	Path          string   `yaml:"path"`
	Exclude       []string `yaml:"exclude,flow,omitempty"`
	Watch         bool     `yaml:"watch"`
	OneFileSystem bool     `yaml:"one_file_system,omitempty"`
	Tags          []string `yaml:"tags,flow,omitempty"`
}

type fileDB struct {
	Type         string   `yaml:"type"`
	Name         string   `yaml:"name,omitempty"`
	Host         string   `yaml:"host,omitempty"`
	Port         int      `yaml:"port,omitempty"`
	Socket       string   `yaml:"socket,omitempty"`
	User         string   `yaml:"user,omitempty"`
	PasswordFile string   `yaml:"password_file,omitempty"`
	Databases    []string `yaml:"databases,flow,omitempty"`
	All          bool     `yaml:"all,omitempty"`
	Path         string   `yaml:"path,omitempty"`
	Every        string   `yaml:"every,omitempty"`
}

// ownedKeys are the top-level keys setup writes; on a second run they are
// replaced (or removed when the answers have none), everything else stays.
var ownedKeys = []string{"repository", "password_file", "host", "s3", "sources", "databases", "state_dir"}

// configHeader starts a configuration setup writes from scratch.
const configHeader = `# escrow agent configuration, written by escrow setup. Every field is
# described in docs/config.md; escrow setup run again replaces repository,
# password_file, host, s3, sources, databases and state_dir, and keeps the rest.
# Check it with: escrow config check --config %s
`

// ConfigText returns the configuration for a: the existing file old (nil:
// none) with setup's keys replaced. Database passwords are named by file
// (p.DBPassword), never written inline.
func ConfigText(old []byte, a *Answers, p Paths) ([]byte, error) {
	fc := fileConfig{Repository: a.Repository, PasswordFile: p.Password(), Host: a.Host, StateDir: a.StateDir}
	if strings.HasPrefix(a.Repository, "s3:") {
		fc.S3 = &fileS3{AccessKeyID: a.S3.AccessKeyID, Region: a.S3.Region, CAFile: a.S3.CAFile}
		if a.S3.SecretAccessKey != "" {
			fc.S3.SecretAccessKeyFile = p.S3Secret()
		}
	}
	for _, s := range a.Sources {
		fc.Sources = append(fc.Sources, fileSource{Path: s.Path, Exclude: s.Exclude, Watch: On(s.Watch, true), OneFileSystem: s.OneFileSystem, Tags: s.Tags})
	}
	for _, db := range a.Databases {
		f := fileDB{Type: db.Type, Name: db.Name, Host: db.Host, Port: db.Port, Socket: db.Socket, User: db.User,
			PasswordFile: db.PasswordFile, Databases: db.Databases, All: db.All, Path: db.Path, Every: db.Every}
		if db.Password != "" {
			f.PasswordFile = p.DBPassword(db.Name)
		}
		fc.Databases = append(fc.Databases, f)
	}
	var fresh yaml.Node
	if err := fresh.Encode(&fc); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(old)) == 0 {
		out, err := marshal(&fresh)
		if err != nil {
			return nil, err
		}
		return append([]byte(fmt.Sprintf(configHeader, p.ConfigFile)), out...), nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(old, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the existing configuration %s is not a YAML mapping; fix it (escrow config check) or move it away, then run setup again", p.ConfigFile)
	}
	top := doc.Content[0]
	// Drop setup's keys, then append the new ones in fresh's order: a
	// key that stays gets its new value where it was.
	newVals := map[string]*yaml.Node{}
	for i := 0; i+1 < len(fresh.Content); i += 2 {
		newVals[fresh.Content[i].Value] = fresh.Content[i+1]
	}
	var kept []*yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if nv, ok := newVals[k.Value]; ok {
			kept = append(kept, k, nv)
			delete(newVals, k.Value)
			continue
		}
		if isOwned(k.Value) {
			continue // setup's key the answers no longer have
		}
		kept = append(kept, k, v)
	}
	for i := 0; i+1 < len(fresh.Content); i += 2 {
		if nv, ok := newVals[fresh.Content[i].Value]; ok {
			kept = append(kept, fresh.Content[i], nv)
		}
	}
	top.Content = kept
	return marshal(&doc)
}

// marshal writes YAML indented by two spaces, as docs/config.md does.
func marshal(n *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func isOwned(key string) bool { return slices.Contains(ownedKeys, key) }
