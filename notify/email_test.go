package notify

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink is a minimal SMTP server on loopback: EHLO, STARTTLS, AUTH PLAIN,
// MAIL, RCPT, DATA, QUIT. It records what it was sent.
type sink struct {
	ln       net.Listener
	tls      *tls.Config
	implicit bool // TLS from the first byte
	starttls bool // offer STARTTLS
	user     string
	pass     string

	mu       sync.Mutex
	messages []mail
	authed   []bool
	wg       sync.WaitGroup
}

type mail struct {
	from string
	to   []string
	data string
	tls  bool
}

// testCert makes a certificate for 127.0.0.1 and localhost, and a pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "escrow test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func newSink(t *testing.T, implicit, starttls bool, cert tls.Certificate) *sink {
	s := &sink{tls: &tls.Config{Certificates: []tls.Certificate{cert}}, implicit: implicit, starttls: starttls, user: "alerts", pass: "s3cret-pass"}
	var err error
	if implicit {
		s.ln, err = tls.Listen("tcp", "127.0.0.1:0", s.tls)
	} else {
		s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { s.ln.Close(); s.wg.Wait() })
	return s
}

func (s *sink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	secure := s.implicit
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(line string) { w.WriteString(line + "\r\n"); w.Flush() }
	say("220 sink ready")
	var m mail
	authed := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "EHLO", "HELO":
			w.WriteString("250-sink\r\n")
			if s.starttls && !secure {
				w.WriteString("250-STARTTLS\r\n")
			}
			say("250 AUTH PLAIN")
		case "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(c, s.tls)
			if tc.Handshake() != nil {
				return
			}
			c, secure = tc, true
			r, w = bufio.NewReader(c), bufio.NewWriter(c)
		case "AUTH":
			f := strings.Fields(line)
			raw, _ := base64.StdEncoding.DecodeString(f[len(f)-1])
			if string(raw) == "\x00"+s.user+"\x00"+s.pass {
				authed = true
				say("235 ok")
			} else {
				say("535 authentication failed")
			}
		case "MAIL":
			m = mail{from: strings.Trim(strings.TrimPrefix(line, "MAIL FROM:"), "<>"), tls: secure}
			say("250 ok")
		case "RCPT":
			m.to = append(m.to, strings.Trim(strings.TrimPrefix(line, "RCPT TO:"), "<>"))
			say("250 ok")
		case "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			m.data = b.String()
			s.mu.Lock()
			s.messages = append(s.messages, m)
			s.authed = append(s.authed, authed)
			s.mu.Unlock()
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func (s *sink) got() ([]mail, []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mail(nil), s.messages...), append([]bool(nil), s.authed...)
}

func TestEmail(t *testing.T) {
	cert, pool := testCert(t)
	e := Event{Kind: MassDeletion, Subject: "/var/www/site", Host: "web1", Time: time.Now(), Message: "92% of the files were deleted at once"}
	for _, tc := range []struct {
		name     string
		mode     string
		implicit bool
	}{{"starttls", TLSStartTLS, false}, {"implicit tls", TLSImplicit, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, tc.implicit, true, cert)
			m := &Email{Server: s.ln.Addr().String(), TLS: tc.mode, Username: "alerts", Password: "s3cret-pass",
				From: "escrow@example.com", To: []string{"owner@example.com", "ops@example.com"}, RootCAs: pool}
			if err := m.Send(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			msgs, authed := s.got()
			if len(msgs) != 1 || !authed[0] || !msgs[0].tls || msgs[0].from != "escrow@example.com" || len(msgs[0].to) != 2 {
				t.Fatalf("messages %+v, authed %v", msgs, authed)
			}
			for _, want := range []string{"Subject: [escrow] web1: mass_deletion /var/www/site", "92% of the files", "To: owner@example.com, ops@example.com"} {
				if !strings.Contains(msgs[0].data, want) {
					t.Errorf("message lacks %q:\n%s", want, msgs[0].data)
				}
			}

			// A wrong password fails with a fix, and without the password.
			m.Password = "wr0ng-pass"
			err := m.Send(context.Background(), e)
			if err == nil || !strings.Contains(err.Error(), "password_file") || strings.Contains(err.Error(), "wr0ng-pass") {
				t.Errorf("wrong password: %v", err)
			}
		})
	}

	// STARTTLS is required: a server without it is refused before any
	// password is sent.
	s := newSink(t, false, false, cert)
	m := &Email{Server: s.ln.Addr().String(), Username: "alerts", Password: "s3cret-pass", From: "a@example.com", To: []string{"b@example.com"}, RootCAs: pool}
	if err := m.Send(context.Background(), e); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("no STARTTLS: %v", err)
	}
	// An untrusted certificate is refused.
	s = newSink(t, true, true, cert)
	m = &Email{Server: s.ln.Addr().String(), TLS: TLSImplicit, From: "a@example.com", To: []string{"b@example.com"}}
	if err := m.Send(context.Background(), e); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
	if msgs, _ := s.got(); len(msgs) != 0 {
		t.Errorf("mail delivered despite an untrusted certificate: %+v", msgs)
	}
}
