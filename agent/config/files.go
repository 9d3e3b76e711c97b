package config

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

// CheckFiles checks, as the agent will need them, the files and directories
// the configuration names: secret files readable and not readable by every
// user, sources readable directories, exclude files readable and valid, the
// SQLite files present, and state_dir writable or creatable. It creates and
// changes nothing.
func (c *Config) CheckFiles() error {
	p := &problems{file: c.File, lines: c.lines}
	c.checkFiles(p)
	return p.err()
}

// checkFiles skips fields that p already holds problems for.
func (c *Config) checkFiles(p *problems) {
	checkSecretFile(p, "password_file", c.PasswordFile, "repository password")
	checkSecretFile(p, "s3.secret_access_key_file", c.S3.SecretAccessKeyFile, "S3 secret access key")
	checkSecretFile(p, "s3.session_token_file", c.S3.SessionTokenFile, "S3 session token")
	if f := c.S3.CAFile; f != "" && !p.bad["s3.ca_file"] {
		if _, err := readCAFile(f); err != nil {
			p.at("s3.ca_file", "%v", err)
		}
	}
	for i, s := range c.Sources {
		sp := fmt.Sprintf("sources[%d]", i)
		if p.bad[sp] {
			continue
		}
		if s.Path != "" && !p.bad[sp+".path"] {
			checkDir(p, sp+".path", s.Path)
		}
		for j, f := range s.ExcludeFile {
			checkExcludeFile(p, fmt.Sprintf("%s.exclude_file[%d]", sp, j), f)
		}
	}
	for i, db := range c.Databases {
		dp := fmt.Sprintf("databases[%d]", i)
		if p.bad[dp] {
			continue
		}
		checkSecretFile(p, dp+".password_file", db.PasswordFile, "database password")
		if db.Type == SQLite && db.Path != "" && !p.bad[dp+".path"] {
			checkReadable(p, dp+".path", db.Path)
		}
	}
	if c.StateDir != "" && !p.bad["state_dir"] {
		checkStateDir(p, c.StateDir)
	}
	c.checkNotifyFiles(p)
}

func checkSecretFile(p *problems, field, path, what string) {
	if path == "" || p.bad[field] {
		return
	}
	if !checkReadable(p, field, path) {
		return
	}
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().Perm()&0o004 != 0 {
		p.at(field, "%s can be read by every user of this machine (mode %04o); run: chmod 600 %s", path, fi.Mode().Perm(), path)
		return
	}
	if field == "password_file" {
		if _, err := repo.ReadPasswordFile(path); err != nil {
			p.at(field, "%v", err)
		}
		return
	}
	if _, err := readSecret(path, what, maxSecret); err != nil {
		p.at(field, "%v", err)
	}
}

// checkReadable checks for a regular file this process may read.
func checkReadable(p *problems, field, path string) bool {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		p.at(field, "%s %s", path, fileProblem(err))
	case fi.IsDir():
		p.at(field, "%s is a directory; give a file", path)
	case !fi.Mode().IsRegular():
		p.at(field, "%s is not a regular file", path)
	case access(path, accessRead) != nil:
		p.at(field, "%s cannot be read: permission denied", path)
	default:
		return true
	}
	return false
}

func checkDir(p *problems, field, dir string) {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		p.at(field, "%s %s", dir, fileProblem(err))
	case !fi.IsDir():
		p.at(field, "%s is a file, not a directory; give the directory to back up", dir)
	case access(dir, accessRead|accessExec) != nil:
		// Listing needs read, and reading what is listed needs search.
		p.at(field, "%s cannot be read: permission denied (it needs read and search permission)", dir)
	}
}

func checkExcludeFile(p *problems, field, path string) {
	if p.bad[field] || !checkReadable(p, field, path) {
		return
	}
	pats, err := backup.ReadExcludeFile(path)
	if err != nil {
		p.at(field, "%s cannot be read: %s", path, fileProblem(err))
		return
	}
	for _, pat := range pats {
		if _, err := backup.NewExcluder([]string{pat}); err != nil {
			p.at(field, "%s: %q is not a valid pattern (check its [ ] and \\)", path, pat)
		}
	}
}

// checkStateDir accepts a writable directory, or a missing one whose nearest
// existing parent is writable, since the agent creates it.
func checkStateDir(p *problems, dir string) {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		p.at("state_dir", "%s is not a directory", dir)
	case err == nil:
		if access(dir, accessWrite|accessExec) != nil {
			p.at("state_dir", "%s is not writable", dir)
		}
	case missing(err):
		parent := filepath.Dir(dir)
		for {
			fi, err = os.Stat(parent)
			if !missing(err) || parent == filepath.Dir(parent) {
				break
			}
			parent = filepath.Dir(parent)
		}
		switch {
		case err != nil:
			p.at("state_dir", "%s does not exist and cannot be created: %s %s", dir, parent, fileProblem(err))
		case !fi.IsDir():
			p.at("state_dir", "%s does not exist and cannot be created: %s is not a directory", dir, parent)
		case access(parent, accessWrite|accessExec) != nil:
			p.at("state_dir", "%s does not exist and cannot be created: %s is not writable", dir, parent)
		}
	default:
		p.at("state_dir", "%s %s", dir, fileProblem(err))
	}
}

// missing reports a path that does not exist, including one running
// through a file ("/etc/passwd/x").
func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// fileProblem says what went wrong with a file in words that follow its
// name, without repeating the name the way *fs.PathError does.
func fileProblem(err error) string {
	var pe *fs.PathError
	switch {
	case missing(err):
		return "does not exist"
	case errors.Is(err, fs.ErrPermission):
		return "cannot be read: permission denied"
	case errors.As(err, &pe):
		return "cannot be read: " + pe.Err.Error()
	}
	return "cannot be read: " + err.Error()
}

// maxSecret bounds how much of a secret file is read, in case the field
// names a large file by mistake. The repository password is read by
// repo.ReadPasswordFile, with its own bound.
const maxSecret = 64 << 10

// ReadSecretFile reads a secret other than the repository password (a
// database or SMTP password, an S3 secret key) the way the agent
// configuration does: the first line of the file, without its line ending.
// The command line's flags for such files use it too, so that one file
// means the same secret to both.
func ReadSecretFile(path, what string) (string, error) {
	return readSecret(path, what, maxSecret)
}

// readSecret returns the first line of a secret file, of at most limit
// bytes. Errors name the file and never hold its contents.
func readSecret(path, what string, limit int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s %s", path, fileProblem(err))
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, int64(limit)+1)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("%s cannot be read: %v", path, err)
	}
	// Cutting the line short would make another secret, silently.
	if len(strings.TrimSuffix(line, "\n")) > limit {
		return "", fmt.Errorf("%s: the first line is longer than %d KiB; is it the right file?", path, limit>>10)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", fmt.Errorf("%s is empty; its first line must be the %s", path, what)
	}
	return line, nil
}

// Password reads the repository password from password_file the way the
// command line reads --password-file (repo.ReadPasswordFile), so that the
// same file opens the same repository in both.
func (c *Config) Password() (string, error) {
	pw, err := repo.ReadPasswordFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	return pw, nil
}

// Password reads the database password from password_file; it is empty when
// there is no password_file.
func (db *Database) Password() (string, error) {
	if db.PasswordFile == "" {
		return "", nil
	}
	pw, err := readSecret(db.PasswordFile, "database password", maxSecret)
	if err != nil {
		return "", fmt.Errorf("database %s: password_file: %w", db.Name, err)
	}
	return pw, nil
}

// S3Config returns the address and credentials of an s3: repository. What
// the file leaves empty comes from the AWS_* variables getenv returns
// (os.Getenv in the agent); the region defaults to us-east-1. A session
// token from the environment belongs to the environment's secret key, so it
// is used only when the secret key also comes from there.
func (c *Config) S3Config(getenv func(string) string) (s3.Config, error) {
	if !strings.HasPrefix(c.Repository, "s3:") {
		return s3.Config{}, fmt.Errorf("repository %s is not an s3: address", c.Repository)
	}
	cfg, err := s3.ParseURL(c.Repository)
	if err != nil {
		return s3.Config{}, err
	}
	cfg.KeyID = c.S3.AccessKeyID
	if cfg.KeyID == "" {
		cfg.KeyID = getenv("AWS_ACCESS_KEY_ID")
	}
	if f := c.S3.SecretAccessKeyFile; f != "" {
		if cfg.Secret, err = readSecret(f, "S3 secret access key", maxSecret); err != nil {
			return s3.Config{}, fmt.Errorf("s3.secret_access_key_file: %w", err)
		}
	} else {
		cfg.Secret = getenv("AWS_SECRET_ACCESS_KEY")
		cfg.SessionToken = getenv("AWS_SESSION_TOKEN")
	}
	if f := c.S3.SessionTokenFile; f != "" {
		if cfg.SessionToken, err = readSecret(f, "S3 session token", maxSecret); err != nil {
			return s3.Config{}, fmt.Errorf("s3.session_token_file: %w", err)
		}
	}
	cfg.Region = c.S3.Region
	if cfg.Region == "" {
		cfg.Region = getenv("AWS_DEFAULT_REGION")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.KeyID == "" || cfg.Secret == "" {
		return s3.Config{}, fmt.Errorf("no S3 credentials for %s: set s3.access_key_id and s3.secret_access_key_file in %s, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the agent's environment", cfg.Location(), c.File)
	}
	return cfg, nil
}

// RootCAs returns the CAs to verify the S3 endpoint with: the system's plus
// those in ca_file. It returns nil, meaning the system's alone, when there
// is no ca_file.
func (c *Config) RootCAs() (*x509.CertPool, error) {
	if c.S3.CAFile == "" {
		return nil, nil
	}
	pool, err := readCAFile(c.S3.CAFile)
	if err != nil {
		return nil, fmt.Errorf("s3.ca_file: %w", err)
	}
	return pool, nil
}

func readCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s", path, fileProblem(err))
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}
