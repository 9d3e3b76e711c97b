package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPassword(t *testing.T) {
	dir := fixture(t)
	c := &Config{PasswordFile: filepath.Join(dir, "password")}
	// The whole file less its final line end, as the command line reads
	// --password-file (repo.ReadPasswordFile).
	if pw, err := c.Password(); err != nil || pw != secretText+"\nsecond line" {
		t.Fatalf("Password() = %q, %v; want the file less its final newline", pw, err)
	}
	crlf := filepath.Join(dir, "crlf")
	if err := os.WriteFile(crlf, []byte("pw with spaces \r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.PasswordFile = crlf
	if pw, err := c.Password(); err != nil || pw != "pw with spaces " {
		t.Fatalf("Password() = %q, %v", pw, err)
	}
	c.PasswordFile = filepath.Join(dir, "empty")
	if _, err := c.Password(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty file: %v", err)
	}

	db := &Database{Name: "shop"}
	if pw, err := db.Password(); err != nil || pw != "" {
		t.Fatalf("no password_file: %q, %v", pw, err)
	}
	db.PasswordFile = filepath.Join(dir, "password")
	if pw, err := db.Password(); err != nil || pw != secretText {
		t.Fatalf("database Password() = %q, %v", pw, err)
	}
	db.PasswordFile = filepath.Join(dir, "nope")
	if _, err := db.Password(); err == nil || !strings.Contains(err.Error(), "database shop: password_file: "+dir+"/nope does not exist") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestS3Config(t *testing.T) {
	dir := fixture(t)
	env := map[string]string{
		"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret",
		"AWS_SESSION_TOKEN": "envtoken", "AWS_DEFAULT_REGION": "eu-central-1",
	}
	getenv := func(k string) string { return env[k] }
	noenv := func(string) string { return "" }
	repo := "s3:https://s3.example.com/bucket/site1"

	// Everything from the file.
	c := &Config{File: "escrow.yaml", Repository: repo, S3: S3{AccessKeyID: "FILEKEY", SecretAccessKeyFile: filepath.Join(dir, "s3.secret"), Region: "nl-ams"}}
	cfg, err := c.S3Config(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Endpoint != "s3.example.com" || cfg.Bucket != "bucket" || cfg.Prefix != "site1" || cfg.KeyID != "FILEKEY" ||
		cfg.Secret != secretText || cfg.SessionToken != "" || cfg.Region != "nl-ams" {
		t.Errorf("from the file: %#v (secret %q, token %q)", cfg, cfg.Secret, cfg.SessionToken)
	}
	// Everything from the environment.
	c = &Config{File: "escrow.yaml", Repository: repo}
	if cfg, err = c.S3Config(getenv); err != nil {
		t.Fatal(err)
	}
	if cfg.KeyID != "ENVKEY" || cfg.Secret != "envsecret" || cfg.SessionToken != "envtoken" || cfg.Region != "eu-central-1" {
		t.Errorf("from the environment: %#v", cfg)
	}
	// The region's last resort.
	c.S3 = S3{AccessKeyID: "K", SecretAccessKeyFile: filepath.Join(dir, "s3.secret"), SessionTokenFile: filepath.Join(dir, "password")}
	if cfg, err = c.S3Config(noenv); err != nil || cfg.Region != "us-east-1" || cfg.SessionToken != secretText {
		t.Errorf("defaults: %#v, %v", cfg, err)
	}
	// No credentials at all.
	c.S3 = S3{}
	if _, err = c.S3Config(noenv); err == nil || !strings.Contains(err.Error(), "no S3 credentials for s3:https://s3.example.com/bucket/site1: set s3.access_key_id and s3.secret_access_key_file in escrow.yaml") {
		t.Errorf("no credentials: %v", err)
	}
	c.S3.SecretAccessKeyFile = filepath.Join(dir, "nope")
	if _, err = c.S3Config(getenv); err == nil || !strings.Contains(err.Error(), "s3.secret_access_key_file: "+dir+"/nope does not exist") {
		t.Errorf("missing secret file: %v", err)
	}
	c.Repository = "/srv/repo"
	if _, err = c.S3Config(getenv); err == nil {
		t.Error("S3Config of a local repository")
	}
}

func TestRootCAs(t *testing.T) {
	dir := t.TempDir()
	c := &Config{}
	if pool, err := c.RootCAs(); pool != nil || err != nil {
		t.Fatalf("no ca_file: %v, %v", pool, err)
	}
	c.S3.CAFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(c.S3.CAFile, selfSigned(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if pool, err := c.RootCAs(); pool == nil || err != nil {
		t.Fatalf("ca_file: %v, %v", pool, err)
	}
	if err := os.WriteFile(c.S3.CAFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RootCAs(); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("bad ca_file: %v", err)
	}
}

func selfSigned(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// A Config names secret files only, so printing one shows no secret.
func TestPrintingShowsNoSecret(t *testing.T) {
	dir := fixture(t)
	c, err := load(t, dir, head+site+"s3:\n  secret_access_key_file: {dir}/s3.secret\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, secretText) {
			t.Fatalf("secret printed: %s", s)
		}
	}
	cfg, err := (&Config{Repository: "s3:https://s3.example.com/bucket", S3: c.S3}).S3Config(func(string) string { return "K" })
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(s, secretText) {
			t.Fatalf("secret printed: %s", s)
		}
	}
}
